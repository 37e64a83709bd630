package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	td.ok(t, "create", "one", "--table", "0 2048 linear "+a+" 0", "--uuid", "11111111-2222-4333-8444-555555555555")
	td.ok(t, "create", "ro", "--table", "0 8 zero", "--read-only")
	td.ok(t, "load", "one", "--table", "0 1024 linear "+a+" 0")
	td.ok(t, "create", "sus", "--table", "0 8 zero")
	td.ok(t, "suspend", "sus")
	wantInfo := td.ok(t, "info", "--json")
	td.Shutdown()

	td2 := startTestDaemon(t, dir)
	if got := td2.ok(t, "info", "--json"); got != wantInfo {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, wantInfo)
	}
	if out := td2.ok(t, "table", "one", "--inactive"); out != "0 1024 linear "+a+" 0\n" {
		t.Fatalf("inactive table lost: %q", out)
	}
	td2.Shutdown()

	// A legacy state.json that cannot be read stops the daemon (nothing
	// can be migrated from it), and is untouched.
	state := filepath.Join(dir, "state", "state.json")
	os.WriteFile(state, []byte("{not json"), 0o600)
	cfg := td2.cfg
	if _, err := Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("start over a bad state file: %v", err)
	}
	if b, _ := os.ReadFile(state); string(b) != "{not json" {
		t.Fatal("bad state file was changed")
	}
	// A readable one is migrated to per-device files and kept aside.
	good, _ := json.Marshal(legacyDoc{Version: 1, Devices: []deviceState{{Name: "old", UUID: "u1", Live: "0 8 zero\n"}}})
	os.WriteFile(state, good, 0o600)
	td3 := startTestDaemon(t, dir)
	if out := td3.ok(t, "table", "old"); out != "0 8 zero\n" {
		t.Fatalf("migrated device's table: %q", out)
	}
	if _, err := os.Stat(state + ".migrated"); err != nil {
		t.Fatalf("legacy state not kept aside: %v", err)
	}
	td3.Shutdown()
}
