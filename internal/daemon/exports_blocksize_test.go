package daemon

import (
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A device whose table has a crypt target with 4096-byte sectors
// advertises 4096 as its NBD minimum block size; a linear one stays byte
// granular; a reload to the other table changes what new clients get.
func TestExportMinimumBlockSize(t *testing.T) {
	td := startTestDaemon(t, "")
	img := testkit.Sparse(t, td.dir, "c.img", 1<<20)
	key := strings.Repeat("0123456789abcdef", 4)
	crypt := "0 2048 crypt aes-xts-plain64 " + key + " 0 " + img + " 0 1 sector_size:4096"
	td.ok(t, "create", "c", "--table", crypt)
	td.ok(t, "create", "l", "--table", "0 2048 linear "+img+" 0")
	for name, want := range map[string]uint32{"c": 4096, "l": 0} {
		info, ok := td.d.Info(name)
		if !ok || info.MinBlockSize != want {
			t.Errorf("%s: minimum block size %d, want %d", name, info.MinBlockSize, want)
		}
	}
	td.ok(t, "load", "l", "--table", crypt)
	td.ok(t, "resume", "l")
	if info, _ := td.d.Info("l"); info.MinBlockSize != 4096 {
		t.Errorf("after a reload to crypt: minimum block size %d", info.MinBlockSize)
	}
}

// A table with a crypt target without allow_discards offers no TRIM, as
// dm's device has no discard support; with allow_discards, or without
// crypt, it does.
func TestExportTrimFollowsDiscardSupport(t *testing.T) {
	td := startTestDaemon(t, "")
	img := testkit.Sparse(t, td.dir, "c.img", 1<<20)
	key := strings.Repeat("0123456789abcdef", 4)
	crypt := "0 1024 crypt aes-xts-plain64 " + key + " 0 " + img + " 0"
	td.ok(t, "create", "no", "--table", crypt, "--table", "1024 1024 linear "+img+" 1024")
	td.ok(t, "create", "yes", "--table", crypt+" 1 allow_discards")
	td.ok(t, "create", "lin", "--table", "0 2048 linear "+img+" 0")
	for name, noTrim := range map[string]bool{"no": true, "yes": false, "lin": false} {
		if info, _ := td.d.Info(name); info.NoTrim != noTrim {
			t.Errorf("%s: NoTrim %v, want %v", name, info.NoTrim, noTrim)
		}
	}
}
