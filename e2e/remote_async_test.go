package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A device over a leg served by another gdm serves its reads and writes
// asynchronously (the front reader starts them on the leg, the leg's reply
// reader completes them: nbdserver's async.go, table's device_async.go):
// fio writes and verifies through it while its table is reloaded and
// resumed again and again, between one target over the leg and two over
// the same leg; no I/O error, no verify failure, and the daemon's metric
// says the asynchronous path served requests.
func TestRemoteLegAsync(t *testing.T) {
	testkit.NeedTool(t, "fio")
	const sizeMiB = 32
	sectors := sizeMiB << 11
	store := startDaemon(t, "")
	file := testkit.Sparse(t, store.dir, "store.img", sizeMiB<<20)
	store.gdm("create", "s", "--table", fmt.Sprintf("0 %d linear %s 0", sectors, file))
	leg := "nbd+unix:///s?socket=" + store.nbdSock
	one := fmt.Sprintf("0 %d linear %s 0", sectors, leg)
	two := fmt.Sprintf("0 %d linear %s 0\n%d %d linear %s %d", sectors/2, leg, sectors/2, sectors/2, leg, sectors/2)
	front := startDaemon(t, "")
	front.gdm("create", "f", "--table", one)

	done := make(chan error, 1)
	go func() {
		for i := range 40 {
			if out, err := front.try("load", "f", "--table", []string{two, one}[i%2]); err != nil {
				done <- fmt.Errorf("load %d: %v: %s", i, err, out)
				return
			}
			if out, err := front.try("resume", "f"); err != nil {
				done <- fmt.Errorf("resume %d: %v: %s", i, err, out)
				return
			}
		}
		done <- nil
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for runs := 0; ; runs++ {
		if n, out := fioVerify(t, front.uri("f"), sizeMiB, runs); n != 0 {
			t.Fatalf("fio reported %d errors over the leg:\n%s", n, out)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("40 reloads during %d fio runs, no errors", runs+1)
			if got := asyncServed(t, front); got == 0 {
				t.Fatalf("gdm_nbd_async_requests_total is 0: no request over the leg took the asynchronous path")
			} else {
				t.Logf("%d requests served asynchronously", got)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloads did not finish in time")
		}
	}
}

// asyncServed is the daemon's gdm_nbd_async_requests_total.
func asyncServed(t *testing.T, d *daemon) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^gdm_nbd_async_requests_total (\d+)$`).FindStringSubmatch(scrape(t, d))
	if m == nil {
		t.Fatal("no gdm_nbd_async_requests_total in the metrics")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
