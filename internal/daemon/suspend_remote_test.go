package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// savedSuspended is what the device's state file says about suspension.
func savedSuspended(t *testing.T, td *testDaemon, name string) bool {
	t.Helper()
	m := mustGet(t, td, name)
	st, err := td.d.state.read(td.d.state.fileOf(m.id))
	if err != nil {
		t.Fatal(err)
	}
	return st.Suspended
}

// A suspend whose flush fails (the remote host of a leg is gone) is a
// failed verb: the device runs on, and its state file and info agree that
// it is not suspended. --noflush then suspends it, and that is recorded.
func TestSuspendWithFailingFlushChangesNothing(t *testing.T) {
	td := startTestDaemon(t, "")
	srv := nbdtest.Start(t, nbdtest.Exports{"x": nbdtest.NewMem(1 << 20)})
	td.ok(t, "create", "r", "--table", "0 2048 linear "+srv.URI("x")+"&timeout=2s&connect-timeout=2s 0")
	srv.Stop()

	if _, err := td.call("suspend", "r"); err == nil {
		t.Fatal("suspend flushed a leg whose server is stopped")
	}
	if st := td.info(t, "r").State; st != "ACTIVE" || savedSuspended(t, td, "r") || mustGet(t, td, "r").dev.Suspended() {
		t.Fatalf("after a failed suspend: info says %s, state file suspended=%v, device suspended=%v; want all running",
			st, savedSuspended(t, td, "r"), mustGet(t, td, "r").dev.Suspended())
	}
	td.ok(t, "suspend", "r", "--noflush")
	if st := td.info(t, "r").State; st != "SUSPENDED" || !savedSuspended(t, td, "r") {
		t.Fatalf("after suspend --noflush: info says %s, state file suspended=%v", st, savedSuspended(t, td, "r"))
	}
}

// hungFlush is an export whose FLUSH does not answer until released: a
// remote host that hangs.
type hungFlush struct {
	*nbdtest.Mem
	release chan struct{}
}

func (h hungFlush) Flush(ctx context.Context) error {
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil
}

// hungExport serves one hungFlush as "x".
type hungExport struct{ e hungFlush }

func (o hungExport) List() []nbdserver.ExportInfo {
	i, _ := o.Info("x")
	return []nbdserver.ExportInfo{i}
}
func (o hungExport) Info(name string) (nbdserver.ExportInfo, bool) {
	return nbdserver.ExportInfo{Name: "x", Size: o.e.Size()}, name == "x"
}
func (o hungExport) Open(string) (nbdserver.Export, func(), error) { return o.e, func() {}, nil }

// A suspend's --timeout covers its flush: a leg whose FLUSH hangs does not
// hold the verb (and the device's locks) for the leg's own request timeout,
// and the suspend that gave up leaves the device running.
func TestSuspendTimeoutCoversTheFlush(t *testing.T) {
	td := startTestDaemon(t, "")
	e := hungFlush{Mem: nbdtest.NewMem(1 << 20), release: make(chan struct{})}
	defer close(e.release)
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &nbdserver.Server{Exports: hungExport{e}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	const legTimeout = 60 * time.Second
	td.ok(t, "create", "r", "--table", "0 2048 linear nbd+unix:///x?socket="+sock+"&timeout=60s 0")

	start := time.Now()
	_, err = td.call("suspend", "r", "--timeout=300ms")
	took := time.Since(start)
	if err == nil {
		t.Fatal("suspend succeeded with a flush that never answers")
	}
	if took >= legTimeout/2 {
		t.Fatalf("suspend --timeout=300ms took %v: it waited for the leg's request timeout (%v)", took, legTimeout)
	}
	if st := td.info(t, "r").State; st != "ACTIVE" || savedSuspended(t, td, "r") {
		t.Fatalf("after a suspend that timed out: info says %s, state file suspended=%v", st, savedSuspended(t, td, "r"))
	}
}

// A suspend or resume waiting behind another verb on the same device (a
// load held in its slow part) gives up when its --timeout ends, and says
// why; once the first verb is done, the same suspend goes through.
func TestVerbTimeoutCoversTheWaitForTheDevice(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "r", "--table", "0 8 zero")
	letGo, loaded := holdLoad(t, td, "r", "0 16 zero")
	defer letGo()
	for _, verb := range []string{"suspend", "resume"} {
		answered := make(chan error, 1)
		go func() {
			_, err := td.call(verb, "r", "--timeout=200ms")
			answered <- err
		}()
		select {
		case err := <-answered:
			if err == nil || !strings.Contains(err.Error(), "another verb on r is still running") {
				t.Errorf("%s --timeout=200ms behind a held load = %v, want a timeout naming the other verb", verb, err)
			}
		case <-time.After(liveness):
			t.Fatalf("%s --timeout=200ms still waits for the held load after %v", verb, liveness)
		}
	}
	letGo()
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	td.ok(t, "suspend", "r", "--timeout=200ms")
	if st := td.info(t, "r").State; st != "SUSPENDED" {
		t.Fatalf("state %s after the suspend", st)
	}
}
