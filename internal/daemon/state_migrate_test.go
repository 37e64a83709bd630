package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A legacy state.json naming one device twice cannot be migrated: both
// would get the same id (it is derived from the name, so that a migration
// cut short writes the same files again), and the second's file replaced
// the first's, which was then gone with no error and no broken device to
// show for it. Such a file now stops the start, untouched, as an
// unreadable one does.
func TestMigrateRefusesDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(cfg.StateDir, "state.json")
	doc, _ := json.Marshal(legacyDoc{Version: 1, Devices: []deviceState{
		{Name: "a", UUID: "u1", Live: "0 8 zero\n"},
		{Name: "a", UUID: "u2", Live: "0 16 zero\n"},
	}})
	if err := os.WriteFile(state, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Start(cfg, nil)
	if err == nil {
		r.Shutdown()
		t.Fatal("a state.json naming device a twice was migrated")
	}
	if !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("start failed, but not naming the device: %v", err)
	}
	if b, _ := os.ReadFile(state); string(b) != string(doc) {
		t.Fatal("the legacy state file was changed")
	}
	if files, _ := filepath.Glob(filepath.Join(cfg.StateDir, "devices", "*.json")); len(files) != 0 {
		t.Fatalf("device files written: %v", files)
	}
}
