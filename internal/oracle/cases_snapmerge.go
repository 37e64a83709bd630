package oracle

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WaitMerged waits until the snapshot-merge target at the start of the
// op's device has merged every exception back into the origin: its status
// usage is down to its metadata (`<allocated>/<total> <metadata>` with
// allocated equal to metadata), as lvconvert --merge waits. The result is
// only whether that came within mergeWait.
const WaitMerged OpKind = "wait-merged"

// mergeWait bounds a WaitMerged: a few MiB under TCG merge in seconds.
const mergeWait = 60 * time.Second

// SnapshotMergeCases are snapshot-merge both ways: the first half makes an
// origin and a snapshot and writes both (origin writes copy, snapshot
// writes make exceptions of their own); the second half runs on the other
// side's backing devices, so that the kernel merges a COW device gdm wrote
// and gdm one the kernel wrote. There the origin's table is snapshot-merge
// over the same COW (what lvconvert --merge loads): it reads as the
// snapshot did, takes writes while it merges, and once WaitMerged has seen
// the merge end, the origin ($0) and the emptied COW device ($1) compare
// byte for byte. Not in Cases() until gdm has the target.
func SnapshotMergeCases() []Case {
	p := Pattern
	merge := func(kind, chunk string) string {
		return "0 8192 snapshot-merge $0 $1 " + kind + " " + chunk
	}
	return []Case{
		{Name: "snapshot-merge-P-8", Seed: 221, Devs: []Init{p(81), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: crossFirst(4096),
			Then: &Half{Table: merge("P", "8"), Script: mergeSecond(4096)}},
		{Name: "snapshot-merge-PO-32", Seed: 222, Devs: []Init{p(82), Zeros},
			Table: snapOrigin, More: []string{snapTable("PO", "32")}, Script: crossFirst(16384),
			Then: &Half{Table: merge("PO", "32"), Script: mergeSecond(16384)}},
		{Name: "snapshot-merge-P-8-zeroes-cow", Seed: 223, Devs: []Init{p(83), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: crossFirst(4096),
			Then: &Half{Table: merge("P", "8") + " 1 discard_zeroes_cow", Script: mergeSecond(4096)}},
	}
}

// mergeSecond reads the merging device whole (the snapshot's view), writes
// a chunk the snapshot changed and one it did not while the merge runs,
// waits for the merge to end, and reads it whole again.
func mergeSecond(chunk int64) []Op {
	ops := ReadAll(snapBytes)
	ops = append(ops,
		Op{Kind: Write, Off: 3<<20 + 512<<10, Len: chunk, Seed: 60},
		Op{Kind: Write, Off: 3 << 19, Len: 512, Seed: 61},
		Op{Kind: WaitMerged},
		// Neither features nor a merge give the device discards.
		Op{Kind: Discard, Off: 0, Len: chunk},
	)
	return append(ops, ReadAll(snapBytes)...)
}

// waitMerged polls side i's status of the device until its first line's
// merge is done (mergeDone), within mergeWait.
func (rn *Runner) waitMerged(i int, name string) Result {
	deadline := time.Now().Add(mergeWait)
	for {
		st, err := rn.side(i).Status(name)
		if err != nil {
			return Result{Err: "status failed"}
		}
		if done, ok := mergeDone(st); ok && done {
			return Result{}
		} else if !ok {
			return Result{Err: fmt.Sprintf("no merge usage in status %q", st)}
		}
		if time.Now().After(deadline) {
			return Result{Err: fmt.Sprintf("merge not done after %v: %q", mergeWait, st)}
		}
		time.Sleep(100 * time.Millisecond) // the status has no event to wait on
	}
}

// mergeDone reads a snapshot-merge status line, "0 N snapshot-merge A/T M":
// done when A equals M. ok is false for any other line.
func mergeDone(status string) (done, ok bool) {
	f := strings.Fields(strings.SplitN(status, "\n", 2)[0])
	if len(f) != 5 || f[2] != "snapshot-merge" {
		return false, false
	}
	used, _, found := strings.Cut(f[3], "/")
	a, errA := strconv.ParseUint(used, 10, 64)
	m, errM := strconv.ParseUint(f[4], 10, 64)
	if !found || errA != nil || errM != nil {
		return false, false
	}
	return a == m, true
}
