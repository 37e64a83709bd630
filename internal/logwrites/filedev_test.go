package logwrites

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Where a file cannot punch holes, a discard is written as zeros, but
// only up to the file's end, as a punched hole (FALLOC_FL_KEEP_SIZE)
// would leave it: a discard reaching past the end (a hostile log can
// name 2^62 bytes) once wrote zeros all the way, growing the file until
// the disk was full.
func TestZeroedDiscardKeepsFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.zeroed = true // as after a punch that failed
	if err := d.Discard(4096, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.Discard(1<<30, 1<<20); err != nil { // wholly past the end
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if len(b) != 8192 || !bytes.Equal(b[:4096], bytes.Repeat([]byte{'x'}, 4096)) || !bytes.Equal(b[4096:], make([]byte, 4096)) {
		t.Fatalf("file is %d bytes after the discards, want 8192: 4096 of x then 4096 zeros", len(b))
	}
}
