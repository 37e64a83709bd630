package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// bareExport serves a 1 MiB export that advertises neither TRIM nor
// WRITE_ZEROES (a server over a disk without either) and returns its URI.
func bareExport(t *testing.T) string {
	m := nbdtest.NewMem(1 << 20)
	m.SetCaps(false, false)
	return nbdtest.Start(t, nbdtest.Exports{"bare": m}).URI("bare")
}

// A device's export offers TRIM and WRITE_ZEROES as dm's device would
// have them: no TRIM where a target sends discards to a device that takes
// none (a remote export without TRIM), no WRITE_ZEROES where a device
// takes none or a target does not pass them on (crypt).
func TestExportFlagsFollowDeviceCaps(t *testing.T) {
	bare := bareExport(t)
	td := startTestDaemon(t, "")
	img := testkit.Sparse(t, td.dir, "c.img", 1<<20)
	key := strings.Repeat("0123456789abcdef", 4)
	td.ok(t, "create", "lin", "--table", "0 2048 linear "+img+" 0")
	td.ok(t, "create", "bare", "--table", "0 2048 linear "+bare+" 0")
	td.ok(t, "create", "crypt", "--table", "0 2048 crypt aes-xts-plain64 "+key+" 0 "+img+" 0 1 allow_discards")
	for name, want := range map[string][2]bool{"lin": {false, false}, "bare": {true, true}, "crypt": {false, true}} {
		info, _ := td.d.Info(name)
		if got := [2]bool{info.NoTrim, info.NoWriteZeroes}; got != want {
			t.Errorf("%s: NoTrim, NoWriteZeroes %v, want %v", name, got, want)
		}
	}
}

// NBD flags are fixed at the handshake: a client connected before a
// reload to a table without discard keeps TRIM, and its TRIM is then
// refused (EINVAL on the wire, the table's EOPNOTSUPP), as one to a table
// whose crypt target takes no discards always was; a client connecting
// after the reload is offered no TRIM.
func TestReloadToTableWithoutDiscard(t *testing.T) {
	bare := bareExport(t)
	td := startTestDaemon(t, "")
	img := testkit.Sparse(t, td.dir, "l.img", 1<<20)
	td.ok(t, "create", "r", "--table", "0 2048 linear "+img+" 0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func() *nbdclient.Client {
		cl, err := nbdclient.Dial(ctx, nbdclient.Options{Network: "unix", Address: filepath.Join(td.dir, "nbd.sock"), Export: "r"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	before := dial()
	if before.Info().Flags&nbdclient.FlagSendTrim == 0 {
		t.Fatal("a linear table on a file offers no TRIM")
	}
	td.ok(t, "load", "r", "--table", "0 2048 linear "+bare+" 0")
	td.ok(t, "resume", "r")
	if err := before.Trim(ctx, 0, 4096); err == nil {
		t.Error("a TRIM to a table without discard succeeded")
	}
	if after := dial(); after.Info().Flags&nbdclient.FlagSendTrim != 0 {
		t.Error("a client connecting after the reload is offered TRIM")
	}
}
