package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// A table file written while the table is built (startTableFile) is kept
// only for a canonical text, under the name writeTable gives it; for any
// other text, for a table refused, and for a state that cannot be written,
// it leaves no file behind.
func TestTableFileWrittenDuringBuild(t *testing.T) {
	tablesInFiles(t)
	td := startTestDaemon(t, "")
	c := controlapi.New(td.control)
	create := func(name, text string) error {
		return c.CallBody(http.MethodPost, "/v1/devices", url.Values{"name": {name}}, controlapi.TextTable, strings.NewReader(text), nil)
	}
	canonical := "0 8 zero\n8 8 error\n"
	if err := create("c", canonical); err != nil {
		t.Fatal(err)
	}
	st := readState(t, td, "c")
	h := sha256.Sum256([]byte(canonical))
	if want := st.ID + "." + hex.EncodeToString(h[:12]) + tableSuffix; st.LiveFile != want {
		t.Fatalf("table file %q, want %q", st.LiveFile, want)
	}
	if b, _ := os.ReadFile(filepath.Join(td.d.state.devicesDir(), st.LiveFile)); string(b) != canonical {
		t.Fatalf("table file holds %q", b)
	}
	if err := create("n", "0 8 zero\n8  8\terror\n"); err != nil {
		t.Fatal(err)
	}
	st = readState(t, td, "n")
	if b, _ := os.ReadFile(filepath.Join(td.d.state.devicesDir(), st.LiveFile)); string(b) != canonical {
		t.Fatalf("table file of a text not canonical holds %q, want %q", b, canonical)
	}
	checkStateFiles(t, td, "after two creates")
	if err := create("bad", "0 8 zero\n16 8 zero\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a table with a gap: %v", err)
	}
	checkStateFiles(t, td, "after a refused table")
	td.d.state.failWrites.Store(true)
	if err := create("f", canonical); err == nil || !strings.Contains(err.Error(), "state not saved") {
		t.Fatalf("a create whose state cannot be written: %v", err)
	}
	td.d.state.failWrites.Store(false)
	checkStateFiles(t, td, "after a create whose state could not be written")
}

// A table file dropped, whether before or after it was written, leaves no
// file; one kept is in place under its name.
func TestTableFileDropAndKeep(t *testing.T) {
	td := startTestDaemon(t, "")
	s := td.d.state
	text := strings.Repeat("0 8 zero\n", 1000)
	written := s.startTableFile("x", text)
	<-written.done
	written.drop()
	s.startTableFile("y", text).drop()
	checkStateFiles(t, td, "after two drops")
	kept := s.startTableFile("z", text)
	name := kept.keep()
	if b, err := os.ReadFile(filepath.Join(s.devicesDir(), name)); err != nil || string(b) != text {
		t.Fatalf("kept file %q: %d bytes, %v", name, len(b), err)
	}
}
