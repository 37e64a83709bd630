package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Over TCP, large writes to a local file go from the socket through a pipe
// into the file (nbdserver's PipeWriter). fio writes 64 KiB to 1 MiB
// blocks and verifies them while the table is reloaded 60 times between
// one linear target and many (whose boundaries cut some writes in two:
// those are declined and written the usual way): no error, no verify
// failure, and gdm_nbd_pipe_writes_total shows that writes took the pipe.
func TestPipeWritesUnderReload(t *testing.T) {
	testkit.NeedTool(t, "fio")
	d := startDaemon(t, "")
	const sizeMiB = 64
	file := testkit.Sparse(t, d.dir, "backing.img", sizeMiB<<20)
	one, many := twoLayouts(file, sizeMiB<<11)
	d.gdm("create", "p", "--table", one)
	done := make(chan error, 1)
	go func() {
		for i := range 60 {
			if out, err := d.try("load", "p", "--table", []string{many, one}[i%2]); err != nil {
				done <- fmt.Errorf("load %d: %v: %s", i, err, out)
				return
			}
			if out, err := d.try("resume", "p"); err != nil {
				done <- fmt.Errorf("resume %d: %v: %s", i, err, out)
				return
			}
		}
		done <- nil
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for runs := 0; ; runs++ {
		if n, out := fioVerifySizes(t, d.tcpURI("p"), sizeMiB, runs, "64k-1m"); n != 0 {
			t.Fatalf("fio reported %d errors in run %d:\n%s", n, runs, out)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if got := metricValue(t, d, "gdm_nbd_pipe_writes_total"); got == 0 {
				t.Fatal("gdm_nbd_pipe_writes_total is 0: no large write over TCP went through a pipe")
			} else {
				t.Logf("60 reloads during %d fio runs, no errors; %d writes from pipes", runs+1, got)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloads did not finish in time")
		}
	}
}
