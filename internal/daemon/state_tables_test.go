package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readState is the device's definition as its JSON file holds it.
func readState(t *testing.T, td *testDaemon, name string) deviceState {
	t.Helper()
	m := mustGet(t, td, name)
	var st deviceState
	b, err := os.ReadFile(td.d.state.fileOf(m.id))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// fileStamp identifies one version of a file: a rewrite (temp + rename)
// changes its inode.
func fileStamp(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return inodeOf(fi)
}

// A device's table is a file of its own, written once: suspend, resume and
// rename rewrite only the JSON; a load writes a new file and the resume
// that replaces the old table removes the old file.
func TestTableFileWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	tablesInFiles(t)
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "d", "--table", "0 8 zero", "--table", "8 8 error")
	st := readState(t, td, "d")
	if st.LiveFile == "" || st.Live != "" {
		t.Fatalf("the JSON holds the table, not a file's name: %+v", st)
	}
	live := filepath.Join(td.d.state.devicesDir(), st.LiveFile)
	if b, _ := os.ReadFile(live); string(b) != "0 8 zero\n8 8 error\n" {
		t.Fatalf("table file holds %q", b)
	}
	stamp := fileStamp(t, live)
	td.ok(t, "suspend", "d")
	td.ok(t, "resume", "d")
	td.ok(t, "rename", "d", "e")
	if fileStamp(t, live) != stamp {
		t.Fatal("a verb that does not change the table rewrote its file")
	}
	td.ok(t, "load", "e", "--table", "0 64 zero")
	td.ok(t, "resume", "e")
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Fatalf("the replaced table's file is still there: %v", err)
	}
	checkStateFiles(t, td, "after load and resume")
	td.Shutdown()
	td2 := startTestDaemon(t, dir)
	if out := td2.ok(t, "table", "e"); out != "0 64 zero\n" {
		t.Fatalf("restored table %q", out)
	}
}

// A small table stays inside its device's JSON: one file, one fsync.
func TestSmallTableStaysInJSON(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "small", "--table", "0 8 zero")
	if st := readState(t, td, "small"); st.LiveFile != "" || st.Live != "0 8 zero\n" {
		t.Fatalf("a small table is not kept in the JSON: %+v", st)
	}
	checkStateFiles(t, td, "a small table")
}

// State written before table files (the table's text inside the JSON, as
// gdm wrote it until now) is restored, and its tables moved out to files.
func TestRestoreTablesInsideJSON(t *testing.T) {
	tablesInFiles(t)
	dir := t.TempDir()
	store := &stateStore{dir: filepath.Join(dir, "state")}
	if _, _, err := store.open(); err != nil {
		t.Fatal(err)
	}
	old := deviceState{ID: "0123abcd", Name: "old", UUID: "u-old", Live: "0 8 zero\n", Inactive: "0 16 zero\n", Suspended: true}
	if err := store.save(old); err != nil {
		t.Fatal(err)
	}
	td := startTestDaemon(t, dir)
	if out := td.ok(t, "table", "old"); out != "0 8 zero\n" {
		t.Fatalf("live table %q", out)
	}
	if out := td.ok(t, "table", "old", "--inactive"); out != "0 16 zero\n" {
		t.Fatalf("inactive table %q", out)
	}
	if i := td.info(t, "old"); i.State != "SUSPENDED" {
		t.Fatalf("state %s", i.State)
	}
	st := readState(t, td, "old")
	if st.Live != "" || st.Inactive != "" || st.LiveFile == "" || st.InactiveFile == "" {
		t.Fatalf("tables not moved out of the JSON: %+v", st)
	}
	checkStateFiles(t, td, "after restoring inline tables")
}

// At start, a table file no definition names (a crash between writing it
// and the JSON naming it) is removed; one whose device's JSON cannot be
// read is kept with it; a JSON naming a file not its own is refused.
func TestStartSweepsUnnamedTableFiles(t *testing.T) {
	tablesInFiles(t)
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "d", "--table", "0 8 zero")
	devs := td.d.state.devicesDir()
	named := readState(t, td, "d").LiveFile
	td.Shutdown()
	orphan := filepath.Join(devs, "feed.0000.table")
	kept := filepath.Join(devs, "bad.0000.table")
	os.WriteFile(orphan, []byte("0 8 zero\n"), 0o600)
	os.WriteFile(kept, []byte("0 8 zero\n"), 0o600)
	os.WriteFile(filepath.Join(devs, "bad.json"), []byte("{not json"), 0o600)
	thief, _ := json.Marshal(deviceState{Version: stateVersion, ID: "thief", Name: "thief", LiveFile: named})
	os.WriteFile(filepath.Join(devs, "thief.json"), thief, 0o600)
	td2 := startTestDaemon(t, dir)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("unnamed table file kept: %v", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("table file of an unreadable state removed: %v", err)
	}
	if _, err := td2.call("info", "thief"); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Fatalf("a state naming another device's table file: %v", err)
	}
	if out := td2.ok(t, "table", "d"); out != "0 8 zero\n" {
		t.Fatalf("table %q", out)
	}
}

// tablesInFiles makes every table, however small, go to a file of its own
// for the rest of the test.
func tablesInFiles(t *testing.T) {
	old := inlineTableMax
	inlineTableMax = 0
	t.Cleanup(func() { inlineTableMax = old })
}
