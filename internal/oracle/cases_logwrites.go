package oracle

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gdm-project/gdm/internal/logwrites"
)

// log-writes cases. The data device ($0) compares byte for byte as in
// every case, but the log ($1) cannot: where the kernel splits a request
// into several bios (at the data device's limits) or the NBD client merges
// two, each logs other entries for the same writes, and the kernel's super
// block carries four bytes of struct padding gdm writes as zeros. So a log
// compares by what a replay would do (CompareLogs): each log is cut into
// epochs at its flush and mark entries, and each epoch's net effect on
// the device (the last data or discard of each 512-byte sector) must be
// the same, epoch by epoch, with the same boundaries (flush, or the mark's
// name) between. The status compares only in whether logging stopped
// (LogWritesStatusDiff): its counts follow the splitting. The runner
// compares the disks LogDevices names so (runlog.go, text.go).
//
// Both sides' disks need a volatile write cache: without one the block
// layer drops flushes before they reach the target, and neither log has
// flush entries (the guest checks its disks say "write back").

// LogWritesCases are the log-writes cases: flushes between writes, FUA
// writes overtaking plain ones, discards and write-zeroes, writes no flush
// follows (logged at destroy, before the end mark), and a log that fills.
func LogWritesCases() []Case {
	p := Pattern
	return []Case{
		{Name: "log-writes-epochs", Seed: 61, Devs: []Init{p(61), Zeros},
			Table: "0 8192 log-writes $0 $1", Script: logWritesScript(61)},
		{Name: "log-writes-unflushed", Seed: 62, Devs: []Init{p(62), Zeros},
			Table: "0 8192 log-writes $0 $1", Script: []Op{
				{Kind: Write, Off: 0, Len: 65536, Seed: 621},
				{Kind: Write, Off: 1 << 20, Len: 8192, Seed: 622},
				{Kind: Read, Off: 0, Len: 2 << 20},
			}},
		// 12 MiB of writes into an 8 MiB log: both stop logging; only the
		// epochs both logs hold in full compare.
		{Name: "log-writes-full", Seed: 63, Devs: []Init{p(63), Zeros},
			Table: "0 16384 log-writes $0 $1", Script: logWritesFillScript()},
		{Name: "log-writes-marks", Seed: 64, Devs: []Init{p(64), Zeros},
			Table: "0 8192 log-writes $0 $1", Script: logWritesMarkScript(64)},
	}
}

// LogWritesPlacedCases are log-writes targets behind another target.
// dm's target does not take its table start off a bio's sector: it reads
// and writes $0 from the same sector as the mapped device's, and logs
// those sectors.
func LogWritesPlacedCases() []Case {
	p := Pattern
	return []Case{
		{Name: "log-writes-placed", Seed: 65, Devs: []Init{p(65), Zeros, p(66)},
			Table: "0 2048 linear $2 0\n2048 8192 log-writes $0 $1", Script: logWritesPlacedScript(65, 2048*512)},
		// ... and past $0's end (its first 8192 sectors are all the table
		// checks) I/O fails: reads only, as dm logs a failed write and
		// gdm does not.
		{Name: "log-writes-placed-past-end", Seed: 67, Devs: []Init{p(67), Zeros, p(68)},
			Table: "0 12288 linear $2 0\n12288 8192 log-writes $0 $1", Script: append(append(logWritesPlacedScript(67, 12288*512),
				Op{Kind: Read, Off: DiskBytes - 2048, Len: 4096},
				Op{Kind: Read, Off: DiskBytes + 4096, Len: 4096}), ReadAll(DiskBytes)...)},
	}
}

// logWritesPlacedScript writes, discards and zeroes a log-writes target
// that starts at byte begin of the mapped device, with a flush between.
func logWritesPlacedScript(seed uint64, begin int64) []Op {
	s := seed * 10
	return []Op{
		{Kind: Write, Off: begin, Len: 65536, Seed: s + 1},
		{Kind: WriteFUA, Off: begin + 8192, Len: 4096, Seed: s + 2},
		{Kind: Flush},
		{Kind: Discard, Off: begin + 16384, Len: 8192},
		{Kind: WriteZeroes, Off: begin + 32768, Len: 8192},
		{Kind: Write, Off: begin - 4096, Len: 8192, Seed: s + 3},
		{Kind: Flush},
		{Kind: Read, Off: begin - 65536, Len: 262144},
	}
}

// logWritesMarkScript puts marks between writes: one after unflushed
// writes (a mark cuts an epoch as a flush does), two in a row, one right
// after a flush, and writes no flush or mark follows.
func logWritesMarkScript(seed uint64) []Op {
	s := seed * 10
	return []Op{
		{Kind: Write, Off: 0, Len: 65536, Seed: s + 1},
		{Kind: Message, Arg: "mark first"},
		{Kind: Write, Off: 32768, Len: 65536, Seed: s + 2},
		{Kind: Flush},
		{Kind: Message, Arg: "mark after-flush"},
		{Kind: Message, Arg: "mark twice"},
		{Kind: Write, Off: 1 << 20, Len: 1 << 20, Seed: s + 3},
		{Kind: WriteFUA, Off: 4096, Len: 4096, Seed: s + 4},
		{Kind: Message, Arg: "mark last"},
		{Kind: Write, Off: 3 << 20, Len: 8192, Seed: s + 5},
		{Kind: Read, Off: 0, Len: 4 << 20},
	}
}

// logWritesScript writes in every way dm's target tells apart, with
// flushes between: plain writes of sizes the kernel may split, a FUA write
// after unflushed ones (logged before them), a discard, a write-zeroes.
func logWritesScript(seed uint64) []Op {
	s := seed * 10
	return []Op{
		{Kind: Write, Off: 0, Len: 4096, Seed: s + 1},
		{Kind: Write, Off: 1 << 20, Len: 1 << 20, Seed: s + 2},
		{Kind: Flush},
		{Kind: Write, Off: 8192, Len: 135168, Seed: s + 3},
		{Kind: WriteFUA, Off: 8192, Len: 4096, Seed: s + 4},
		{Kind: Flush},
		{Kind: Discard, Off: 1 << 20, Len: 65536},
		{Kind: WriteZeroes, Off: 2 << 20, Len: 131072},
		{Kind: Write, Off: 3 << 20, Len: 512, Seed: s + 5},
		{Kind: Flush},
		{Kind: Read, Off: 0, Len: 4 << 20},
	}
}

// logWritesFillScript writes 12 MiB in 1 MiB writes, each followed by a
// FUA write and a flush. The FUA writes matter: the super block is
// written only at FUA writes and marks, and the end mark of a full log is
// not logged, so a log that fills before either has no super block at
// all, on dm as on gdm.
func logWritesFillScript() []Op {
	var ops []Op
	for i := int64(0); i < 12; i++ {
		ops = append(ops, Op{Kind: Write, Off: i % 8 << 20, Len: 1 << 20, Seed: 630 + uint64(i)},
			Op{Kind: WriteFUA, Off: 8<<20 - 4096, Len: 4096, Seed: 650 + uint64(i)}, Op{Kind: Flush})
	}
	return ops
}

// LogDevices are the backing devices of c's table that are log-writes
// logs ($N indexes), to compare with CompareLogs.
func LogDevices(c Case) []int {
	var out []int
	for _, line := range strings.Split(c.Table, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[2] == "log-writes" {
			if n, ok := devIndex(f[4]); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// LogWritesStatusDiff compares two log-writes status lines in what does
// not depend on how requests were split: whether logging stopped. "" when
// they agree.
func LogWritesStatusDiff(a, b string) string {
	stopped := func(s string) bool { return strings.HasSuffix(strings.TrimSpace(s), " logging_disabled") }
	if stopped(a) == stopped(b) {
		return ""
	}
	return fmt.Sprintf("log-writes status: logging stopped on one side only: %q, %q", a, b)
}

// epoch is one stretch of a log between boundaries: the boundary that
// ends it ("flush", "mark NAME", or "" for the log's end) and each
// touched sector's last state, a digest of its data or "discard".
type epoch struct {
	end     string
	sectors map[uint64]string
}

// CompareLogs compares two logs by their epochs (see above); full says
// the logs filled, and then only the epochs both hold in full compare.
// "" when they agree, which two logs that are unreadable alike also do:
// a log device that refused every write (4 KiB blocks under entries of
// 512 bytes) holds no log on either side.
func CompareLogs(a, b []byte, full bool) string {
	ea, errA := epochs(a)
	eb, errB := epochs(b)
	switch {
	case errA != nil && errB != nil && errA.Error() == errB.Error():
		return ""
	case errA != nil:
		return "log A: " + errA.Error()
	case errB != nil:
		return "log B: " + errB.Error()
	}
	return compareEpochs(ea, eb, full)
}

// compareEpochs compares two logs' epochs; see CompareLogs.
func compareEpochs(ea, eb []epoch, full bool) string {
	if full {
		n := max(0, min(len(ea), len(eb))-1) // each side's last epoch may be cut short
		ea, eb = ea[:n], eb[:n]
	}
	if len(ea) != len(eb) {
		return fmt.Sprintf("logs have %d and %d epochs, ending %s and %s", len(ea), len(eb), ends(ea), ends(eb))
	}
	for i := range ea {
		if d := epochDiff(ea[i], eb[i]); d != "" {
			return fmt.Sprintf("epoch %d: %s", i, d)
		}
	}
	return ""
}

// ends lists each epoch's end and how many sectors it touched.
func ends(es []epoch) string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%q/%d", e.end, len(e.sectors)))
	}
	return "[" + strings.Join(out, " ") + "]"
}

func epochDiff(a, b epoch) string {
	if a.end != b.end {
		return fmt.Sprintf("ends at %q and at %q", a.end, b.end)
	}
	var keys []uint64
	for s := range a.sectors {
		keys = append(keys, s)
	}
	for s := range b.sectors {
		if _, ok := a.sectors[s]; !ok {
			keys = append(keys, s)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, s := range keys {
		if a.sectors[s] != b.sectors[s] {
			return fmt.Sprintf("sector %d: %q and %q (%d and %d sectors touched)", s, a.sectors[s], b.sectors[s], len(a.sectors), len(b.sectors))
		}
	}
	return ""
}

// epochs decodes a log and folds its entries into epochs.
func epochs(log []byte) ([]epoch, error) {
	r, err := logwrites.NewReader(bytes.NewReader(log))
	if err != nil {
		return nil, err
	}
	ss := uint64(r.Super().SectorSize)
	cur := epoch{sectors: map[uint64]string{}}
	var out []epoch
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return append(out, cur), nil
		}
		if err != nil {
			return nil, err
		}
		e := rec.Entry
		switch {
		case e.Flags&logwrites.FlagMark != 0:
			cur.end = "mark " + rec.Mark
		case e.Flags&logwrites.FlagFlush != 0 && e.NrSectors == 0:
			cur.end = "flush"
		}
		if err := fold(r, rec, ss, cur.sectors); err != nil {
			return nil, err
		}
		if cur.end != "" {
			out = append(out, cur)
			cur = epoch{sectors: map[uint64]string{}}
		}
	}
}

// fold applies one entry's data or discard to an epoch's sectors, in
// 512-byte sectors whatever the log's sector size.
func fold(r *logwrites.Reader, rec logwrites.Record, ss uint64, sectors map[uint64]string) error {
	e := rec.Entry
	first, n := e.Sector*ss/512, e.NrSectors*ss/512
	if e.Flags&logwrites.FlagDiscard != 0 {
		for s := first; s < first+n; s++ {
			sectors[s] = "discard"
		}
		return nil
	}
	buf := make([]byte, 512)
	for i := uint64(0); i < n; i++ {
		if err := r.Data(rec, buf, int64(i*512)); err != nil {
			return err
		}
		sum := sha256.Sum256(buf)
		sectors[first+i] = fmt.Sprintf("%x", sum[:8])
	}
	return nil
}
