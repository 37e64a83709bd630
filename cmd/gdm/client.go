package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const (
	defaultControl   = "/run/gdm/gdm.sock"
	defaultNBDSocket = "/run/gdm/nbd.sock"
)

// clientFlags are the flags every client verb has.
type clientFlags struct {
	control string
	json    bool
}

func (c *clientFlags) register(fs *flag.FlagSet, printing bool) {
	def := os.Getenv("GDM_CONTROL")
	if def == "" {
		def = defaultControl
	}
	fs.StringVar(&c.control, "control", def, "control socket of the daemon ($GDM_CONTROL)")
	if printing {
		fs.BoolVar(&c.json, "json", false, "print JSON")
	}
}

// api is a client of the daemon's control socket.
type api struct {
	socket string
	http   *http.Client
}

func newAPI(socket string) *api {
	return &api{socket: socket, http: &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
		Timeout: 10 * time.Minute,
	}}
}

// call does one request; out, if not nil, receives the JSON reply.
func (a *api) call(method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := "http://gdm" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return fmt.Errorf("cannot reach the daemon at %s (is `gdm serve` running? set --control or GDM_CONTROL): %v", a.socket, ne.Err)
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// tableFlags take a table as dmsetup does: --table-file FILE, one or more
// --table 'LINE', or stdin.
type tableFlags struct {
	file  string
	lines stringList
}

func (t *tableFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.file, "table-file", "", "read the table from `FILE`")
	fs.Var(&t.lines, "table", "a table `LINE` (repeatable; one target each)")
}

func (t *tableFlags) read(stdin io.Reader) (string, error) {
	switch {
	case t.file != "" && len(t.lines) > 0:
		return "", fmt.Errorf("%w: --table-file and --table together", errUsage)
	case t.file != "":
		b, err := os.ReadFile(t.file)
		return string(b), err
	case len(t.lines) > 0:
		return strings.Join(t.lines, "\n") + "\n", nil
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", fmt.Errorf("%w: no table: give --table-file, --table or the table on stdin", errUsage)
		}
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("no table: give --table-file, --table or the table on stdin")
	}
	return string(b), nil
}

// postDevice runs one action on a device (load, resume, suspend, clear,
// rename) and, with --json, prints the device's info after it.
func postDevice(cf clientFlags, stdout io.Writer, name, action string, q url.Values, body any) error {
	var info deviceInfo
	if err := newAPI(cf.control).call(http.MethodPost, "/v1/devices/"+name+"/"+action, q, body, &info); err != nil {
		return onDevice(name, err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}

// waitQuery is the query of a verb that waits for in-flight I/O: the flag
// named by set (if on) and the timeout (if given).
func waitQuery(flag string, set bool, timeout time.Duration) url.Values {
	q := url.Values{}
	if set {
		q.Set(flag, "1")
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	return q
}

// getEach fetches path suffix for each named device.
func getEach[T any](a *api, names []string, suffix string, q url.Values) ([]T, error) {
	out := make([]T, 0, len(names))
	for _, n := range names {
		var v T
		if err := a.call(http.MethodGet, "/v1/devices/"+n+suffix, q, nil, &v); err != nil {
			return nil, onDevice(n, err)
		}
		out = append(out, v)
	}
	return out, nil
}
