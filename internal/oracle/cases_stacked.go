package oracle

import (
	"slices"
	"time"
)

// StackedCases put a fault under a target (Case.Under, under.go): what
// users stack dm devices for, and where a fault must travel up through
// the target above it as dm's does.
//
//   - striped-flakey-leg: one leg is a flakey device in its down interval
//     (every I/O fails): a read or write that reaches that leg fails, one
//     that does not succeeds, a write across both legs fails whole with its
//     good leg's part written, a flush fails, and the status shows the leg
//     D.
//   - striped-flakey-flush: only a flush reaches the failing leg (every read
//     and write stays on the good one): the flush fails, and that alone
//     shows the leg D.
//   - striped-flakey-drop-leg: the leg drops writes instead: every write
//     succeeds, what reached the leg is not there to read, and the leg
//     stays A.
//   - snapshot-cow-error-tail: a persistent snapshot whose COW device ends
//     in an error target after its header, first metadata area and first
//     data chunk: the first copy succeeds, the second fails and the
//     snapshot turns Invalid; its reads and writes fail from then on, the
//     origin goes on, and the COW device holds the header marked invalid.
//   - snapshot-cow-error-writes: a snapshot is made and written (first
//     half); then its COW device is loaded under a flakey that fails every
//     write: the store loads (it only reads), the snapshot reads what it
//     had, and the first origin write whose copy fails invalidates it
//     (dm's header rewrite fails too, so the COW keeps a valid header).
//   - linear-delay: a linear target over a delay device: every class of
//     I/O takes its delay through the target above (dust would be the
//     other candidate; the guest's kernel has no dm-dust).
//   - striped-over-linear: no fault, the standard script over a striped
//     table whose legs are linear devices at offsets of two disks: the
//     mapping, discards, write-zeroes and FUA through two layers.
//   - linear-flakey-error-writes, linear-flakey-drop-writes: a linear
//     target over a flakey that fails, or drops, every write: the
//     writes fail (or succeed) and the reads show what the disk holds.
//   - crypt-flakey-error-writes, crypt-flakey-drop-writes: the same
//     under crypt, whose reads decrypt what the disk holds.
func StackedCases() []Case {
	p := Pattern
	ms := time.Millisecond
	return []Case{
		{Name: "striped-flakey-leg", Seed: 501, Devs: []Init{p(501), p(502)},
			Under: []string{"0 8192 flakey $1 0 0 3600"},
			Table: "0 16384 striped 2 8 $0 0 $u0 0", Script: stripedLegScript(), Expect: []string{"2 $0 $u0 1 AD"}},
		{Name: "striped-flakey-flush", Seed: 506, Devs: []Init{p(508), p(509)},
			Under: []string{"0 8192 flakey $1 0 0 3600"},
			Table: "0 16384 striped 2 8 $0 0 $u0 0", Script: stripedFlushScript(), Expect: []string{"2 $0 $u0 1 AD"}},
		{Name: "striped-flakey-drop-leg", Seed: 502, Devs: []Init{p(503), p(504)},
			Under: []string{"0 8192 flakey $1 0 0 3600 1 drop_writes"},
			Table: "0 16384 striped 2 8 $0 0 $u0 0", Script: stripedLegScript(), Expect: []string{"2 $0 $u0 1 AA"}},
		{Name: "snapshot-cow-error-tail", Seed: 503, Devs: []Init{p(505), Zeros},
			Under: []string{"0 24 linear $1 0\n24 8168 error"},
			Table: snapOrigin, More: []string{"0 8192 snapshot $0 $u0 P 8"}, Script: cowFailScript(false),
			Expect: []string{"snapshot Invalid"}},
		{Name: "snapshot-cow-error-writes", Seed: 504, Devs: []Init{p(506), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: cowFirstScript(),
			Then: &Half{Under: []string{"0 8192 flakey $1 0 0 3600 1 error_writes"},
				Table: snapOrigin, More: []string{"0 8192 snapshot $0 $u0 P 8"}, Script: cowFailScript(true),
				Expect: []string{"snapshot Invalid"}}},
		{Name: "linear-delay", Seed: 505, Devs: []Init{p(507)},
			Under: []string{"0 8192 delay $0 0 40"},
			Table: "0 8192 linear $u0 0", Script: delayScript(8192, 40*ms, 40*ms, 40*ms)},
		{Name: "striped-over-linear", Seed: 507, Devs: []Init{p(510), p(511)},
			Under: []string{"0 6144 linear $0 1000", "0 6144 linear $1 77"},
			Table: "0 12288 striped 2 24 $u0 0 $u1 0"},
		// linear over a flakey that fails writes, or drops them: gdm's
		// linear takes a block device's I/O through AIO, so these are
		// its asynchronous path's errors and reads.
		{Name: "linear-flakey-error-writes", Seed: 508, Devs: []Init{p(512)},
			Under: []string{"0 8192 flakey $0 0 0 3600 1 error_writes"},
			Table: "0 8192 linear $u0 0", Script: stripedLegScript()},
		{Name: "linear-flakey-drop-writes", Seed: 509, Devs: []Init{p(513)},
			Under: []string{"0 8192 flakey $0 0 0 3600 1 drop_writes"},
			Table: "0 8192 linear $u0 0", Script: stripedLegScript()},
		// crypt takes a block device's I/O through AIO too, its crypto on
		// goroutines of its own (targets/crypt_async.go).
		{Name: "crypt-flakey-error-writes", Seed: 510, Devs: []Init{p(514)},
			Under: []string{"0 8192 flakey $0 0 0 3600 1 error_writes"},
			Table: "0 8192 crypt aes-xts-plain64 " + cryptKey256 + " 0 $u0 0", Script: stripedLegScript()},
		{Name: "crypt-flakey-drop-writes", Seed: 511, Devs: []Init{p(515)},
			Under: []string{"0 8192 flakey $0 0 0 3600 1 drop_writes"},
			Table: "0 8192 crypt aes-xts-plain64 " + cryptKey256 + " 0 $u0 0", Script: stripedLegScript()},
	}
}

// stripedLegScript runs on a 2-leg striped table of 4 KiB chunks whose
// second leg is faulty: reads and writes of a chunk of each leg and across
// both, a flush, and reads of what the good leg got.
func stripedLegScript() []Op {
	return []Op{
		{Kind: Read, Off: 0, Len: 4096},
		{Kind: Read, Off: 4096, Len: 4096},
		{Kind: Read, Off: 0, Len: 65536},
		{Kind: Write, Off: 0, Len: 4096, Seed: 1},
		{Kind: Write, Off: 4096, Len: 4096, Seed: 2},
		{Kind: Write, Off: 8192, Len: 8192, Seed: 3},
		{Kind: WriteFUA, Off: 65536, Len: 4096, Seed: 4},
		{Kind: Flush},
		{Kind: Read, Off: 0, Len: 4096},
		{Kind: Read, Off: 4096, Len: 4096},
		{Kind: Read, Off: 8192, Len: 4096},
		{Kind: Read, Off: 65536, Len: 4096},
		{Kind: Read, Off: 0, Len: 1 << 20},
	}
}

// cowFirstScript makes a snapshot's COW hold an exception: an origin write
// copies chunk 0, a snapshot write allocates chunk 128 (at 512 KiB).
func cowFirstScript() []Op {
	return append(slices.Clone(lvmOrder),
		Op{Kind: Write, Off: 512, Len: 512, Seed: 11},
		Op{Kind: Write, Off: 512 << 10, Len: 4096, Seed: 12, Dev: 1},
		Op{Kind: Flush},
		Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1},
	)
}

// cowFailScript runs on an origin and a snapshot of it (device 1) whose
// COW device fails the next copy: loaded is a store that already holds
// cowFirstScript's exceptions (its reads must find them), else a new one
// that takes one copy (of chunk 0) first. The origin write at 1 MiB then
// copies and fails, which invalidates the snapshot: its reads and writes
// fail, the origin reads what was written.
func cowFailScript(loaded bool) []Op {
	ops := slices.Clone(lvmOrder)
	if loaded {
		ops = append(ops, Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1})
	} else {
		ops = append(ops, Op{Kind: Write, Off: 512, Len: 512, Seed: 21},
			Op{Kind: Read, Off: 0, Len: 65536, Dev: 1})
	}
	return append(ops,
		Op{Kind: Write, Off: 1 << 20, Len: 4096, Seed: 22},
		Op{Kind: Read, Off: 1 << 20, Len: 4096},
		Op{Kind: Read, Off: 0, Len: 4096, Dev: 1},
		Op{Kind: Read, Off: 1 << 20, Len: 4096, Dev: 1},
		Op{Kind: Write, Off: 2 << 20, Len: 4096, Seed: 23, Dev: 1},
		Op{Kind: Write, Off: 3 << 20, Len: 4096, Seed: 24},
		Op{Kind: Flush},
		Op{Kind: Read, Off: 0, Len: 4 << 20},
	)
}

// stripedFlushScript reads and writes only chunks of the first leg of a
// 2-leg striped table of 4 KiB chunks, then flushes (which reaches every
// leg), and reads again.
func stripedFlushScript() []Op {
	return []Op{
		{Kind: Read, Off: 0, Len: 4096},
		{Kind: Write, Off: 0, Len: 4096, Seed: 1},
		{Kind: Write, Off: 8192, Len: 4096, Seed: 2},
		{Kind: Read, Off: 16384, Len: 4096},
		{Kind: Flush},
		{Kind: Read, Off: 0, Len: 4096},
		{Kind: Read, Off: 8192, Len: 4096},
	}
}
