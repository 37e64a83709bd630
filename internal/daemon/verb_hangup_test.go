package daemon

import (
	"net/http"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// A verb waiting behind another on the same device stops waiting when its
// client hangs up, as a suspend or resume does at its --timeout: it
// neither holds a control connection for as long as the first verb takes,
// nor acts later on a device its client was told nothing happened to.
// Before, load, clear, rename and remove waited for the device's lock
// without an end, and a `gdm remove` that had timed out removed the
// device once the verb ahead of it finished.
func TestVerbGivesUpWhenItsClientHangsUp(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "r", "--table", "0 8 zero")
	letGo, loaded := holdLoad(t, td, "r", "0 16 zero")
	defer letGo()
	impatient := controlapi.New(td.control).WithTimeout(200 * time.Millisecond)
	for _, v := range []struct {
		method, path string
		body         any
	}{
		{http.MethodDelete, "/v1/devices/r", nil},
		{http.MethodPost, "/v1/devices/r/rename", controlapi.RenameReq{NewName: "s"}},
		{http.MethodPost, "/v1/devices/r/clear", nil},
		{http.MethodPost, "/v1/devices/r/load", controlapi.TableText{Table: "0 24 zero\n"}},
	} {
		if err := impatient.Call(v.method, v.path, nil, v.body, nil); err == nil {
			t.Fatalf("%s %s answered behind a held load", v.method, v.path)
		}
	}
	// The server learns of a hang-up when its read of the connection
	// ends, a moment after the client gave up; a verb whose hang-up it
	// has not seen yet when the lock comes free still runs (in CI, the
	// last load did). Release the held load only once no verb is
	// waiting for the lock.
	testkit.WaitFor(t, 10*time.Second, "the waiting verbs see their hang-ups", func() bool { return !stackNames("lockContext") })
	letGo()
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the verbs' handlers end", func() bool { return !stackNames("verbRoutes") })
	i := td.info(t, "r") // fails if a remove or rename whose client hung up ran
	if !i.InactiveTable {
		t.Fatal("a clear whose client hung up ran after the held load")
	}
	if got := td.ok(t, "table", "r", "--inactive"); got != "0 16 zero\n" {
		t.Fatalf("inactive table %q: a load whose client hung up ran after the held one", got)
	}
}
