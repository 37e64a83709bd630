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
// the same leg; no I/O error, no verify failure, and the daemon's metrics
// say the asynchronous path served requests, that large writes went
// from fio's socket to the leg's through a pipe (nbdserver's
// splicewrite.go), and that large reads went from the leg's socket to
// fio's through a pipe, with no goroutine waiting (async_splice.go).
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
	reloaded := false
	// Every other run writes 64 KiB to 1 MiB: those over 64 KiB go through
	// a pipe (spliced writes). Runs go on until the reloads are over and
	// there was a run of each.
	for runs := 0; !reloaded || runs < 2; runs++ {
		if n, out := fioVerifySizes(t, front.uri("f"), sizeMiB, runs, []string{"4k-64k", "64k-1m"}[runs%2]); n != 0 {
			t.Fatalf("fio reported %d errors over the leg:\n%s", n, out)
		}
		if !reloaded {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				reloaded = true
				t.Logf("40 reloads during %d fio runs, no errors", runs+1)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloads did not finish in time")
		}
	}
	if got := asyncServed(t, front); got == 0 {
		t.Fatalf("gdm_nbd_async_requests_total is 0: no request over the leg took the asynchronous path")
	} else {
		t.Logf("%d requests served asynchronously", got)
	}
	if got := metricValue(t, front, "gdm_nbd_spliced_writes_total"); got == 0 {
		t.Fatalf("gdm_nbd_spliced_writes_total is 0: no large write over the leg went through a pipe")
	} else {
		t.Logf("%d writes spliced", got)
	}
	if got := metricValue(t, front, "gdm_nbd_spliced_reads_total"); got == 0 {
		t.Fatalf("gdm_nbd_spliced_reads_total is 0: no large read over the leg was spliced asynchronously")
	} else {
		t.Logf("%d reads spliced asynchronously", got)
	}
}

// asyncServed is the daemon's gdm_nbd_async_requests_total.
func asyncServed(t *testing.T, d *daemon) int64 {
	t.Helper()
	return metricValue(t, d, "gdm_nbd_async_requests_total")
}

// metricValue is the value of the daemon's metric name (one without
// labels).
func metricValue(t *testing.T, d *daemon, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(scrape(t, d))
	if m == nil {
		t.Fatalf("no %s in the metrics", name)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
