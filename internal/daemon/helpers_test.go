package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// testDaemon is a daemon started in-process on temp sockets and ports.
type testDaemon struct {
	*Running
	dir     string
	control string
}

// testConfig is a daemon's Config with everything under dir.
func testConfig(dir string) Config {
	return Config{
		NBDListen: "127.0.0.1:0", NBDSocket: filepath.Join(dir, "nbd.sock"),
		Control: filepath.Join(dir, "control.sock"), MetricsListen: "127.0.0.1:0",
		StateDir: filepath.Join(dir, "state"), LogLevel: slog.LevelError, ShutdownWait: 10e9,
	}
}

func startTestDaemon(t *testing.T, dir string) *testDaemon {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return startWith(t, dir, testConfig(dir))
}

func startWith(t testing.TB, dir string, cfg Config) *testDaemon {
	t.Helper()
	r, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	return &testDaemon{Running: r, dir: dir, control: cfg.Control}
}

// call does one verb, spelled as on gdm's command line (`create NAME
// --table L ...`, `remove NAME --force`, `info NAME`), as one request to
// the control API, and returns the JSON reply. The CLI itself is tested
// in cmd/gdm; here the verb's words only keep the tests short.
func (td *testDaemon) call(args ...string) (string, error) {
	var pos, tables []string
	q, flags := url.Values{}, map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		k, v, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if (k == "table" || k == "uuid") && !hasValue {
			i++
			v = args[i]
		}
		switch k {
		case "table":
			tables = append(tables, v)
		case "live", "noflush", "force", "inactive":
			q.Set(k, "1")
		case "timeout":
			q.Set(k, v)
		default:
			flags[k] = v
		}
	}
	name, table := "", ""
	if len(pos) > 0 {
		name = pos[0]
	}
	if len(tables) > 0 {
		table = strings.Join(tables, "\n") + "\n"
	}
	c, dev := controlapi.New(td.control), "/v1/devices/"+name
	var out any
	var err error
	switch args[0] {
	case "create":
		_, ro := flags["read-only"]
		err = c.Call(http.MethodPost, "/v1/devices", nil, controlapi.CreateReq{Name: name, Table: table, UUID: flags["uuid"], ReadOnly: ro}, &out)
	case "load":
		err = c.Call(http.MethodPost, dev+"/load", nil, controlapi.TableText{Table: table}, &out)
	case "resume", "suspend", "clear":
		err = c.Call(http.MethodPost, dev+"/"+args[0], q, nil, &out)
	case "rename":
		err = c.Call(http.MethodPost, dev+"/rename", nil, controlapi.RenameReq{NewName: pos[1]}, &out)
	case "remove":
		err = c.Call(http.MethodDelete, dev, q, nil, &out)
	case "ls", "info":
		if name == "" {
			dev = "/v1/devices"
		}
		err = c.Call(http.MethodGet, dev, nil, nil, &out)
	case "table":
		var tt controlapi.TableText
		err = c.Call(http.MethodGet, dev+"/table", q, nil, &tt)
		return tt.Table, err
	default:
		return "", fmt.Errorf("test helper: no verb %q", args[0])
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	return string(b), err
}

// ok does a verb that must succeed.
func (td *testDaemon) ok(t testing.TB, args ...string) string {
	t.Helper()
	out, err := td.call(args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

// fails does a verb that must fail with an error containing want.
func (td *testDaemon) fails(t testing.TB, want string, args ...string) {
	t.Helper()
	_, err := td.call(args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %v; want one containing %q", strings.Join(args, " "), err, want)
	}
}

// info is the control API's info of one device.
func (td *testDaemon) info(t testing.TB, name string) controlapi.DeviceInfo {
	t.Helper()
	var i controlapi.DeviceInfo
	if err := json.Unmarshal([]byte(td.ok(t, "info", name)), &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func (td *testDaemon) uri(name string) string {
	return "nbd+unix:///" + name + "?socket=" + filepath.Join(td.dir, "nbd.sock")
}

// openFiles lists the paths process pid has open under dir, sockets aside.
func openFiles(t *testing.T, pid int, dir string) []string {
	var out []string
	for _, p := range testkit.OpenUnder(t, pid, dir) {
		if !strings.HasSuffix(p, ".sock") {
			out = append(out, p)
		}
	}
	return out
}

// holdLoad starts a load of table on name and holds it in its build (the
// slow part, under the device's verb lock) until letGo, which may be
// called more than once; loaded gets the load's result.
func holdLoad(t *testing.T, td *testDaemon, name, table string) (letGo func(), loaded <-chan error) {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	td.d.buildHook = func(string) {
		once.Do(func() { close(held) })
		<-release
	}
	result := make(chan error, 1)
	go func() {
		_, err := td.call("load", name, "--table", table)
		result <- err
	}()
	<-held
	var releaseOnce sync.Once
	return func() { releaseOnce.Do(func() { close(release) }) }, result
}
