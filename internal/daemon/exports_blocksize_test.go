package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
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

// A device over a remote export that advertises a minimum block size of
// 4096 (and refuses requests not aligned to it) has a logical block size
// of 4096, as dm stacks its devices' limits: an NBD client of the device
// sees a minimum block size of 4096, and its blocks reach the export
// aligned. A linear target 1 sector into that export is refused at load,
// with the line and dm's reason.
func TestExportMinimumBlockSizeFromRemoteLeg(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.SetMinBlock(4096)
	srv := nbdtest.Start(t, nbdtest.Exports{"4k": m})
	td := startTestDaemon(t, "")
	td.ok(t, "create", "r", "--table", "0 2048 linear "+srv.URI("4k")+" 0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := nbdclient.Dial(ctx, nbdclient.Options{Network: "unix", Address: filepath.Join(td.dir, "nbd.sock"), Export: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.Info().MinBlock; got != 4096 {
		t.Errorf("an NBD client of the device sees a minimum block size of %d, want 4096", got)
	}
	p := bytes.Repeat([]byte{7}, 4096)
	if err := cl.WriteAt(ctx, p, 8192, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.At(8192, 4096), p) || m.Refusals() != 0 {
		t.Errorf("the block did not reach the export whole (%d refused)", m.Refusals())
	}
	td.fails(t, "line 2: linear: not aligned to the logical block size: start=1 not aligned to h/w logical block size 4096 of "+srv.URI("4k"),
		"create", "bad", "--table", "0 8 zero", "--table", "8 2040 linear "+srv.URI("4k")+" 1")
}
