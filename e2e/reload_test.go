package e2e

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// twoLayouts maps the same bytes two ways: one linear target, and the same
// range cut into many linear targets over the same file.
func twoLayouts(file string, sectors int) (one, many string) {
	one = fmt.Sprintf("0 %d linear %s 0\n", sectors, file)
	var b strings.Builder
	for s := 0; s < sectors; s += 2048 + 8 {
		n := min(2048+8, sectors-s)
		fmt.Fprintf(&b, "%d %d linear %s %d\n", s, n, file, s)
	}
	return one, b.String()
}

// fioVerify runs fio over NBD with 4 jobs writing and verifying crc32c, and
// returns the error count it reports.
func fioVerify(t *testing.T, uri string, sizeMiB int, seed int) (int, string) {
	t.Helper()
	return fioVerifySizes(t, uri, sizeMiB, seed, "4k-64k")
}

// fioVerifySizes is fioVerify with writes of the sizes in bsrange.
func fioVerifySizes(t *testing.T, uri string, sizeMiB int, seed int, bsrange string) (int, string) {
	t.Helper()
	per := sizeMiB / 4
	out := run(t, "fio", "--name=reload", "--ioengine=nbd", "--uri="+uri,
		"--rw=randwrite", "--bsrange="+bsrange, "--iodepth=8", "--numjobs=4",
		fmt.Sprintf("--size=%dm", per), fmt.Sprintf("--offset_increment=%dm", per),
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", fmt.Sprintf("--randseed=%d", seed),
		"--group_reporting", "--output-format=json")
	errs := testkit.FioErrors(t, out)
	return errs, out
}

// Reload the table 200 times, with resume and with resume --live, between
// two layouts of the same bytes while fio writes and verifies: no I/O
// error, no verify failure.
func TestReloadUnderLoad(t *testing.T) {
	testkit.NeedTool(t, "fio")
	d := startDaemon(t, "")
	const sizeMiB = 64
	file := testkit.Sparse(t, d.dir, "backing.img", sizeMiB<<20)
	one, many := twoLayouts(file, sizeMiB<<11)
	d.gdm("create", "r", "--table", one)
	for _, mode := range []string{"resume", "resume --live"} {
		t.Run(strings.ReplaceAll(mode, " --", "-"), func(t *testing.T) {
			var reloads atomic.Int64
			done := make(chan error, 1)
			go func() {
				for i := range 200 {
					layout := []string{many, one}[i%2]
					if out, err := d.try("load", "r", "--table", layout); err != nil {
						done <- fmt.Errorf("load %d: %v: %s", i, err, out)
						return
					}
					args := append(strings.Fields(mode), "r")
					if out, err := d.try(args...); err != nil {
						done <- fmt.Errorf("%s %d: %v: %s", mode, i, err, out)
						return
					}
					reloads.Add(1)
				}
				done <- nil
			}()
			runs := 0
			deadline := time.Now().Add(5 * time.Minute)
			for {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					if runs == 0 {
						t.Fatal("fio never ran during the reloads")
					}
					t.Logf("%d reloads (%s) during %d fio runs, no errors", reloads.Load(), mode, runs)
					return
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("reloads did not finish in time")
				}
				if n, out := fioVerify(t, d.uri("r"), sizeMiB, runs); n != 0 {
					t.Fatalf("fio reported %d errors after %d reloads:\n%s", n, reloads.Load(), out)
				}
				runs++
			}
		})
	}
	if out := d.gdm("info", "r"); !strings.Contains(out, "ACTIVE") {
		t.Fatalf("info after reloads:\n%s", out)
	}
}
