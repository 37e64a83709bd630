package daemon

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// failingFlush is an export whose FLUSH fails once armed, after running
// onFlush: a remote host that dies just as a suspend flushes it, while
// the test breaks the state directory under the verb.
type failingFlush struct {
	*nbdtest.Mem
	armed   *atomic.Bool
	onFlush func()
}

func (f *failingFlush) Flush(ctx context.Context) error {
	if !f.armed.Load() {
		return f.Mem.Flush(ctx)
	}
	f.onFlush()
	return syscall.EIO
}

// oneExport serves e as "x".
type oneExport struct{ e nbdserver.Export }

func (o oneExport) List() []nbdserver.ExportInfo {
	i, _ := o.Info("x")
	return []nbdserver.ExportInfo{i}
}
func (o oneExport) Info(name string) (nbdserver.ExportInfo, bool) {
	return nbdserver.ExportInfo{Name: "x", Size: o.e.Size()}, name == "x"
}
func (o oneExport) Open(string) (nbdserver.Export, func(), error) { return o.e, func() {}, nil }

// serveOne serves e as "x" on a UNIX socket for the test's length, and
// returns the socket's path.
func serveOne(t *testing.T, e nbdserver.Export) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "x.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &nbdserver.Server{Exports: oneExport{e}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// A suspend whose flush fails is undone, and its state file is put back
// to say "not suspended". When that put-back's own directory fsync fails
// too, the retry must save the definition in force (not suspended), not
// the refused one: before, it saved the suspend the verb had just
// refused, and a restart brought the device up suspended, its I/O
// hanging, though no suspend ever succeeded.
func TestFailedVerbsPutBackIsNotTheRefusedChange(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	failSuspend(t, td, "r", func() { td.d.state.failDirSyncs.Store(1) }) // the put-back's fsync
	if mustGet(t, td, "r").dev.Suspended() {
		t.Fatal("the failed suspend left the device suspended")
	}
	if savedSuspended(t, td, "r") {
		t.Fatal("the state file says suspended after a suspend that failed: a restart would suspend the device")
	}
	td.Shutdown()
	if st := startTestDaemon(t, dir).info(t, "r").State; st != "ACTIVE" {
		t.Fatalf("after a restart the device is %s; no suspend of it succeeded", st)
	}
}

// When the put-back of a failed verb cannot be written at all, the state
// file keeps the refused change until the next verb's save; that save
// must write the device as it is, not carry the refused change on.
func TestNextVerbAfterAFailedPutBackSavesTheTruth(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	failSuspend(t, td, "r", func() { td.d.state.failWrites.Store(true) }) // the put-back fails
	td.d.state.failWrites.Store(false)
	td.ok(t, "load", "r", "--table", "0 8 zero") // any verb that saves
	if mustGet(t, td, "r").dev.Suspended() {
		t.Fatal("the failed suspend left the device suspended")
	}
	if savedSuspended(t, td, "r") {
		t.Fatal("a later load saved the refused suspend: a restart would suspend the device")
	}
}

// failSuspend creates name over a remote leg whose flush fails, running
// onFlush as it fails, and has a suspend of it fail so (its flush is the
// suspend's).
func failSuspend(t *testing.T, td *testDaemon, name string, onFlush func()) {
	t.Helper()
	var armed atomic.Bool
	sock := serveOne(t, &failingFlush{Mem: nbdtest.NewMem(1 << 20), armed: &armed, onFlush: onFlush})
	td.ok(t, "create", name, "--table", "0 2048 linear nbd+unix:///x?socket="+sock+"&timeout=5s 0")
	armed.Store(true)
	if _, err := td.call("suspend", name); err == nil {
		t.Fatal("suspend succeeded though its flush failed")
	}
	armed.Store(false)
}
