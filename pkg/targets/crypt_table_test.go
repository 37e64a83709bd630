package targets_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/internal/oracle"
	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Every oracle crypt case builds as a table over files of the guest's disk
// size; the table keeps the key, in lower case (what --showkeys prints and
// the state saves), and its TABLE status has zeros in its place.
func TestCryptOracleCasesBuild(t *testing.T) {
	for _, c := range oracle.CryptCases() {
		dir := t.TempDir()
		var disks []string
		for i := range c.Devs {
			disks = append(disks, testkit.Sparse(t, dir, fmt.Sprint(i), oracle.DiskBytes))
		}
		tb, err := table.FromText(oracle.Bind(c.Table, disks), false)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		text, status := tb.Text(), strings.Join(tb.StatusOf(targets.StatusTable), "\n")
		for i, line := range tb.Lines() {
			if line.Type != "crypt" {
				continue
			}
			key := line.Args[1]
			if key != strings.ToLower(key) || !strings.Contains(text, key) {
				t.Errorf("%s: the table keeps key %q, not in lower case", c.Name, key)
			}
			if strings.Contains(status, key) || !strings.Contains(tb.StatusOf(targets.StatusTable)[i], strings.Repeat("0", len(key))) {
				t.Errorf("%s: TABLE status does not mask the key: %s", c.Name, status)
			}
		}
		tb.Devs().Close() // a table is destroyed only by its device; the files are all it holds here
	}
}

// Many goroutines write and read their own parts of a crypt table at once
// (run with -race): the pooled scratch is never shared by two requests.
func TestCryptConcurrentIO(t *testing.T) {
	dir := t.TempDir()
	dev := testkit.Sparse(t, dir, "dev", 8<<20)
	tb, err := table.FromText(fmt.Sprintf("0 16384 crypt aes-cbc-essiv:sha256 %s 0 %s 0", strings.Repeat("ab", 32), dev), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Devs().Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			want := bytes.Repeat([]byte{byte(g + 1)}, 64<<10)
			got := make([]byte, len(want))
			for i := range 16 {
				off := int64(g)<<20 + int64(i%4)*int64(len(want))
				if err := tb.WriteAt(ctx, want, off, 0); err != nil {
					errs <- err
					return
				}
				if err := tb.ReadAt(ctx, got, off); err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("goroutine %d: read back differs (%v)", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// gdm accepts and refuses the oracle's crypt lines as the oracle says dm
// does (the guest checks that claim against dm itself), but those gdm
// refuses on purpose.
func TestCryptOracleAcceptance(t *testing.T) {
	disk := testkit.Sparse(t, t.TempDir(), "disk", oracle.DiskBytes)
	for _, a := range oracle.CryptAcceptance() {
		tb, err := table.FromText(oracle.Bind(a.Table, []string{disk}), false)
		if want := a.Want && a.GdmRefuses == ""; (err == nil) != want {
			t.Errorf("%q: accepted %v, want %v (%v)", a.Table, err == nil, want, err)
		}
		if err == nil {
			tb.Devs().Close()
		}
	}
}

// IVs count from the target's start (dm_target_offset), neither the
// device's nor the backing file's: a crypt target after a linear one, at
// one offset in its file, writes what the same crypt target at sector 0 of
// another table, at another offset, writes.
func TestCryptIVsCountFromTheTarget(t *testing.T) {
	dir := t.TempDir()
	a, b, lin := testkit.Sparse(t, dir, "a", 1<<20), testkit.Sparse(t, dir, "b", 1<<20), testkit.Sparse(t, dir, "l", 1<<20)
	line := "crypt aes-xts-plain64 " + strings.Repeat("c3", 32) + " 5 %s %d"
	ta, err := table.FromText(fmt.Sprintf("0 64 linear %s 0\n64 1024 "+line, lin, a, 16), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Devs().Close()
	tb, err := table.FromText(fmt.Sprintf("0 1024 "+line, b, 40), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Devs().Close()
	data := bytes.Repeat([]byte("gdm crypt "), 1000)[:8192]
	ctx := context.Background()
	if err := ta.WriteAt(ctx, data, 64*512+4096, 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.WriteAt(ctx, data, 4096, 0); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.ReadFile(a)
	fb, _ := os.ReadFile(b)
	ca, cb := fa[16*512+4096:][:8192], fb[40*512+4096:][:8192]
	if !bytes.Equal(ca, cb) || bytes.Equal(ca, data) {
		t.Fatal("the crypt target after a linear one wrote other ciphertext than at sector 0")
	}
}
