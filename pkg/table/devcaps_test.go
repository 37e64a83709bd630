package table

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// A table takes discards only where every target does and every target
// that sends them to its devices has devices that take them, and
// write-zeroes only where every target passes them on (linear, striped)
// to devices that take them, as dm 6.1's dm_table_supports_discards and
// dm_table_supports_write_zeroes ask. bare is a remote export that
// advertises neither TRIM nor WRITE_ZEROES (a server over a disk without
// either); full advertises both; file is a local file (both).
func TestTableStacksDeviceCaps(t *testing.T) {
	full, bare := nbdtest.NewMem(1<<20), nbdtest.NewMem(1<<20)
	bare.SetCaps(false, false)
	srv := nbdtest.Start(t, nbdtest.Exports{"full": full, "bare": bare})
	f, b := srv.URI("full"), srv.URI("bare")
	dir := t.TempDir()
	file := testkit.Sparse(t, dir, "f.img", 1<<20)
	logDev := testkit.Sparse(t, dir, "log.img", 1<<20)
	key := strings.Repeat("ab", 32)
	crypt := func(dev, opts string) string { return "crypt aes-xts-plain64 " + key + " 0 " + dev + " 0" + opts }
	cases := []struct {
		name, text            string
		discards, writeZeroes bool
	}{
		{"linear on a file", "0 16 linear " + file + " 0", true, true},
		{"linear on full", "0 16 linear " + f + " 0", true, true},
		{"linear on bare", "0 16 linear " + b + " 0", false, false},
		{"linear on full, then on bare", "0 8 linear " + f + " 0\n8 8 linear " + b + " 8", false, false},
		{"striped over full and bare", "0 32 striped 2 8 " + f + " 0 " + b + " 0", false, false},
		{"crypt with allow_discards on full", "0 16 " + crypt(f, " 1 allow_discards"), true, false},
		{"crypt with allow_discards on bare", "0 16 " + crypt(b, " 1 allow_discards"), false, false},
		{"delay on bare", "0 16 delay " + b + " 0 0", false, false},
		{"flakey on bare", "0 16 flakey " + b + " 0 1 0", false, false},
		{"log-writes onto bare: it discards on its own", "0 16 log-writes " + b + " " + logDev, true, false},
		{"log-writes onto bare next to linear on full", "0 16 log-writes " + b + " " + logDev + "\n16 16 linear " + f + " 16", true, false},
		{"zero", "0 16 zero", true, false},
		{"zero next to linear on full", "0 8 zero\n8 8 linear " + f + " 0", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := mustTable(t, c.text)
			defer tb.destroy(discardLog(), false)
			if got := tb.SupportsDiscard(); got != c.discards {
				t.Errorf("SupportsDiscard = %v, want %v", got, c.discards)
			}
			if got := tb.SupportsWriteZeroes(); got != c.writeZeroes {
				t.Errorf("SupportsWriteZeroes = %v, want %v", got, c.writeZeroes)
			}
		})
	}
}

// A snapshot with discard_zeroes_cow discards on its origin and its COW
// device (dm's snapshot lists both), so a COW device without discard
// leaves it none.
func TestSnapshotDiscardNeedsCowDiscard(t *testing.T) {
	bare := nbdtest.NewMem(1 << 20)
	bare.SetCaps(false, false)
	srv := nbdtest.Start(t, nbdtest.Exports{"bare": bare})
	dir := t.TempDir()
	origin := testkit.Sparse(t, dir, "origin.img", 1<<20)
	cow := testkit.Sparse(t, dir, "cow.img", 1<<20)
	for _, c := range []struct {
		cow  string
		want bool
	}{{cow, true}, {srv.URI("bare"), false}} {
		tb := mustTable(t, "0 2048 snapshot "+origin+" "+c.cow+" P 8 1 discard_zeroes_cow")
		if got := tb.SupportsDiscard(); got != c.want {
			t.Errorf("COW %s: SupportsDiscard = %v, want %v", c.cow, got, c.want)
		}
		tb.destroy(discardLog(), false)
	}
}

// A discard to a table that takes none is refused whole with EOPNOTSUPP
// before any target, as the block layer refuses it to such a dm device:
// only a client offered TRIM before a reload sends one. The part on the
// target whose device could discard is left alone too.
func TestTrimOnTableWithoutDiscard(t *testing.T) {
	full, bare := nbdtest.NewMem(1<<20), nbdtest.NewMem(1<<20)
	bare.SetCaps(false, false)
	srv := nbdtest.Start(t, nbdtest.Exports{"full": full, "bare": bare})
	data := bytes.Repeat([]byte{7}, 8192)
	full.Set(0, data)
	tb := mustTable(t, "0 16 linear "+srv.URI("full")+" 0\n16 16 linear "+srv.URI("bare")+" 0")
	defer tb.destroy(discardLog(), false)
	if err := tb.Trim(context.Background(), 0, 16384); !errors.Is(err, ErrNoDiscard) {
		t.Fatalf("trim: %v, want ErrNoDiscard", err)
	}
	if !bytes.Equal(full.At(0, 8192), data) {
		t.Error("the refused trim reached a target")
	}
}
