package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// editAttachment rewrites the saved attachment of the only device in the
// state dir with edit, as a corrupt or hand-edited state file would hold.
func editAttachment(t *testing.T, dir string, edit func(a map[string]any)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "state", "devices", "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("state files %v, %v", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["attached"].(map[string]any))
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A saved attachment is checked at restart as an attach request is: a
// state file saying 100000 connections made the restarting daemon open
// socket pairs until it ran out of descriptors, and one naming another
// device than /dev/nbd<index> made /dev/gdm/NAME point at it. Such an
// attachment is not reconnected (the error is logged; detach forgets it);
// one with a bad index is forgotten at once, the kernel refusing it.
func TestRestartChecksSavedAttachment(t *testing.T) {
	cases := map[string]func(a map[string]any){
		"too many connections": func(a map[string]any) { a["connections"] = maxAttachConns + 1 },
		"no connections":       func(a map[string]any) { a["connections"] = 0 },
		"negative index":       func(a map[string]any) { a["index"] = -1 },
		"device not its index": func(a map[string]any) { a["device"] = "/dev/nbd0p1" },
		"negative timeout":     func(a map[string]any) { a["timeout_seconds"] = -5 },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			k := &fakeKernel{}
			links := useFakeKernel(t, k)
			dir := t.TempDir()
			td := startTestDaemon(t, dir)
			attachedDevice(t, td)
			td.Shutdown()
			editAttachment(t, dir, edit)
			td = startTestDaemon(t, dir)
			if len(k.reconfigs) != 0 {
				t.Fatalf("a bad saved attachment was reconnected: %d sockets, %+v", len(k.dev(0).conns), k.reconfigs[0])
			}
			if target, err := os.Readlink(filepath.Join(links, "d")); err == nil && target != "/dev/nbd0" {
				t.Fatalf("link points at %q", target)
			}
			if err := td.detach("d"); err != nil && name != "negative index" { // that one is forgotten already
				t.Fatalf("detach, the way out: %v", err)
			}
			if i := td.info(t, "d"); i.Attached != nil {
				t.Fatalf("attachment left after detach: %+v", i.Attached)
			}
		})
	}
}
