package table

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// The identities a table records, passed back as Expect (through JSON, as a
// daemon's state file would carry them), accept the same files and refuse a
// path replaced meanwhile, naming the line; the options reach every open.
func TestIdentitiesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := fmt.Sprintf("0 2048 linear %s 0\n2048 2048 striped 2 8 %s 0 %s 1024\n", a, a, b)
	tb, err := FromTextWith(text, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := tb.Identities()
	tb.destroy(discardLog(), false)
	if len(ids) != 2 || ids[a] == (targets.Identity{}) || ids[b] == (targets.Identity{}) || ids[a] == ids[b] {
		t.Fatalf("identities %+v; want two distinct ones for %s and %s", ids, a, b)
	}
	js, err := json.Marshal(ids)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]targets.Identity
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	opts := Options{Open: targets.OpenOptions{Expect: back}}
	tb, err = FromTextWith(text, opts)
	if err != nil {
		t.Fatalf("same files, recorded identities: %v", err)
	}
	tb.destroy(discardLog(), false)

	if err := os.Rename(a, b); err != nil { // b is now a's file: a different inode at b
		t.Fatal(err)
	}
	if err := os.WriteFile(a, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = FromTextWith(text, opts)
	var le *LineError
	if !errors.Is(err, targets.ErrIdentityChanged) || !errors.As(err, &le) || le.Line != 1 {
		t.Fatalf("replaced backing files: %v; want ErrIdentityChanged on line 1", err)
	}
	_, err = FromTextWith(text, Options{ReadOnly: true, Open: targets.OpenOptions{AllowPrefixes: []string{"/nowhere"}}})
	if !errors.Is(err, targets.ErrPathNotAllowed) {
		t.Fatalf("allow-list: %v; want ErrPathNotAllowed", err)
	}
}
