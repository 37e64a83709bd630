package nbdnetlink

import (
	"os"
	"path/filepath"
	"testing"
)

// Backend reads /sys/block/nbdN/backend as the kernel writes it (with a
// newline); a device without the file has none, but a missing sysfs is
// an error, not "no backend".
func TestBackend(t *testing.T) {
	old := sysBlock
	t.Cleanup(func() { sysBlock = old })
	sysBlock = t.TempDir()
	os.MkdirAll(filepath.Join(sysBlock, "nbd3"), 0o755)
	os.WriteFile(filepath.Join(sysBlock, "nbd3", "backend"), []byte("gdm:u1\n"), 0o644)
	os.MkdirAll(filepath.Join(sysBlock, "nbd4"), 0o755)
	c := &Conn{fd: -1}
	for idx, want := range map[int]string{3: "gdm:u1", 4: "", 5: "", 1 << 32: ""} {
		if got, err := c.Backend(idx); err != nil || got != want {
			t.Errorf("backend of %d = %q, %v; want %q", idx, got, err, want)
		}
	}
	sysBlock = filepath.Join(sysBlock, "nope")
	if _, err := c.Backend(3); err == nil {
		t.Error("no sysfs: no error")
	}
}
