package oracle

import "time"

// faultCases are the cases of the fault-injecting targets, delay and
// flakey. Their scripts are short and their requests small (at most
// 64 KiB, aligned): one request is then one bio on dm's side and one NBD
// request on gdm's, so that "the Nth byte of a bio" (corrupt_bio_byte)
// names the same byte on both, and a delay is paid once per op.
func faultCases() []Case {
	p := Pattern
	ms := time.Millisecond
	return []Case{
		// delay: mapping (no wait) under the standard script, then each
		// argument form with its classes timed. The two 9-argument cases
		// order the classes both ways, so that a class given another's
		// delay is too short in one of them.
		{Name: "delay-0-standard", Seed: 15, Devs: []Init{p(46), p(47)},
			Table: "0 6000 delay $0 1000 0\n6000 4000 linear $1 0"},
		{Name: "delay-3", Seed: 16, Devs: []Init{p(48)}, Table: "0 8192 delay $0 100 40",
			Script: delayScript(8192, 40*ms, 40*ms, 40*ms)},
		{Name: "delay-6", Seed: 17, Devs: []Init{p(49), p(50)}, Table: "0 8192 delay $0 0 20 $1 2048 70",
			Script: delayScript(8192, 20*ms, 70*ms, 70*ms)},
		{Name: "delay-9-rising", Seed: 18, Devs: []Init{p(51), p(52), Zeros}, Table: "0 8192 delay $0 8 20 $1 16 50 $2 0 90",
			Script: delayScript(8192, 20*ms, 50*ms, 90*ms)},
		{Name: "delay-9-falling", Seed: 19, Devs: []Init{p(53), Zeros, p(54)}, Table: "0 8192 delay $0 0 90 $1 0 50 $2 4096 20",
			Script: delayScript(8192, 90*ms, 50*ms, 20*ms)},
		{Name: "delay-suspend", Seed: 20, Devs: []Init{p(55), p(56)}, Table: "0 8192 delay $0 0 3000 $1 0 3000",
			Script: delaySuspendScript()},

		// flakey: always up (a remap), always down with each feature
		// (deterministic: up 0), and two up/down cycles timed.
		{Name: "flakey-up-standard", Seed: 21, Devs: []Init{p(57)}, Table: "0 12000 flakey $0 1000 3600 1"},
		{Name: "flakey-down", Seed: 22, Devs: []Init{p(58), p(59)},
			Table: "0 6144 flakey $0 0 0 1\n6144 2048 linear $1 0", Script: flakeyDownScript(8192, true)},
		{Name: "flakey-down-drop-writes", Seed: 23, Devs: []Init{p(60)},
			Table: "0 8192 flakey $0 0 0 1 1 drop_writes", Script: flakeyDownScript(8192, true)},
		{Name: "flakey-down-error-writes", Seed: 24, Devs: []Init{p(61)},
			Table: "0 8192 flakey $0 0 0 1 1 error_writes", Script: flakeyDownScript(8192, true)},
		{Name: "flakey-down-corrupt-w", Seed: 25, Devs: []Init{p(62)},
			Table: "0 8192 flakey $0 0 0 1 5 corrupt_bio_byte 1000 w 171 0", Script: withoutZeroes(flakeyDownScript(8192, true))},
		{Name: "flakey-down-corrupt-w-far", Seed: 26, Devs: []Init{p(63)},
			Table: "0 8192 flakey $0 16 0 1 5 corrupt_bio_byte 5000 w 0 0", Script: withoutZeroes(flakeyDownScript(8192, true))},
		{Name: "flakey-down-corrupt-r", Seed: 27, Devs: []Init{p(64)}, Later: LaterReadCorrupt(1, 255),
			Table: "0 8192 flakey $0 0 0 1 5 corrupt_bio_byte 1 r 255 0", Script: flakeyDownScript(8192, false)},
		{Name: "flakey-down-drop-corrupt-r", Seed: 28, Devs: []Init{p(65)}, Later: LaterReadCorrupt(4096, 7),
			Table: "0 8192 flakey $0 0 0 1 6 drop_writes corrupt_bio_byte 4096 r 7 0", Script: flakeyDownScript(8192, false)},
		{Name: "flakey-cycle", Seed: 29, Devs: []Init{p(66)}, Table: flakeyCycle,
			Script: flakeyCycleScript(flakeyCycle)},
	}
}

// delayScript times each class of a delay target of size sectors, three
// ops each (the upper bound takes the least): reads, writes (one FUA,
// one discard, one write-zeroes: all of the write class), flushes; reads
// of what was written (from the read device, which with 6 or 9 arguments
// is not where it went); and a read of the whole device, timed too.
func delayScript(size int64, read, write, flush time.Duration) []Op {
	ops := []Op{
		{Kind: Read, Off: 0, Len: 4096, Delay: read},
		{Kind: Read, Off: 65536, Len: 65536, Delay: read},
		{Kind: Read, Off: 512 * (size - 1), Len: 512, Delay: read},
		{Kind: Write, Off: 4096, Len: 4096, Seed: 1, Delay: write},
		{Kind: WriteFUA, Off: 131072, Len: 65536, Seed: 2, Delay: write},
		{Kind: Write, Off: 512 * (size - 1), Len: 512, Seed: 3, Delay: write},
		{Kind: Flush, Delay: flush},
		{Kind: Discard, Off: 262144, Len: 65536, Delay: write},
		{Kind: WriteZeroes, Off: 393216, Len: 65536, Delay: write},
		{Kind: Flush, Delay: flush},
		{Kind: Read, Off: 4096, Len: 4096, Delay: read},
		{Kind: Read, Off: 131072, Len: 65536, Delay: read},
		{Kind: Flush, Delay: flush},
	}
	for _, op := range ReadAll(size * 512) {
		op.Delay = read
		ops = append(ops, op)
	}
	return ops
}

// delaySuspendScript suspends a device whose 3-second delay holds a write
// and then a read: dm lets held I/O go at presuspend, so both end long
// before their delay. It then reloads a 30 ms table and checks that a
// suspend and resume leave delays working.
func delaySuspendScript() []Op {
	const s, ms = time.Second, time.Millisecond
	return []Op{
		{Kind: SuspendDuring, Inner: Write, Off: 8192, Len: 65536, Seed: 200, At: 500 * ms, Delay: 3 * s},
		{Kind: Resume},
		{Kind: SuspendDuring, Inner: Read, Off: 0, Len: 65536, At: 500 * ms, Delay: 3 * s},
		{Kind: Reload, Arg: "0 8192 delay $0 0 30 $1 0 30"}, {Kind: Resume},
		{Kind: Read, Off: 8192, Len: 65536, Delay: 30 * ms},
		{Kind: Write, Off: 0, Len: 4096, Seed: 201, Delay: 30 * ms},
		{Kind: Suspend}, {Kind: Resume},
		{Kind: Read, Off: 0, Len: 4096, Delay: 30 * ms},
		{Kind: Write, Off: 4096, Len: 4096, Seed: 202, Delay: 30 * ms},
		{Kind: Flush, Delay: 30 * ms},
	}
}

// flakeyOps is one of every I/O a flakey target treats apart (reads,
// writes of sizes either side of a corrupt byte, FUA, flush, discard,
// write-zeroes), each followed by a read of its range, at base.
func flakeyOps(base int64, seed uint64) []Op {
	return []Op{
		{Kind: Read, Off: base, Len: 4096},
		{Kind: Write, Off: base, Len: 4096, Seed: seed},
		{Kind: Read, Off: base, Len: 4096},
		{Kind: Write, Off: base + 8192, Len: 65536, Seed: seed + 1},
		{Kind: Read, Off: base + 8192, Len: 65536},
		{Kind: Write, Off: base + 81920, Len: 512, Seed: seed + 2},
		{Kind: WriteFUA, Off: base + 90112, Len: 8192, Seed: seed + 3},
		{Kind: Read, Off: base + 81920, Len: 16384},
		{Kind: Flush},
		{Kind: Discard, Off: base + 131072, Len: 65536},
		{Kind: Read, Off: base + 131072, Len: 65536},
		{Kind: WriteZeroes, Off: base + 196608, Len: 65536},
		{Kind: Read, Off: base + 196608, Len: 65536},
	}
}

// flakeyDownScript runs flakeyOps on a device that is always down (up
// interval 0), one set of them across the end of its first target (a
// table may put a linear target there), then with whole reads it all (in
// MiB requests: not where reads are corrupted, since how the kernel's
// nbd client splits those is its own; the backing disks are compared
// anyway).
func flakeyDownScript(size int64, whole bool) []Op {
	ops := flakeyOps(0, 300)
	ops = append(ops, Op{Kind: Write, Off: 6144*512 - 4096, Len: 8192, Seed: 310},
		Op{Kind: Read, Off: 6144*512 - 4096, Len: 8192})
	ops = append(ops, flakeyOps(1<<20, 320)...)
	if !whole {
		return ops
	}
	return append(ops, ReadAll(size*512)...)
}

// withoutZeroes drops the write-zeroes of a corrupt_bio_byte w script.
// Neither flakey nor the kernel's nbd client passes write-zeroes on, so
// the block layer writes pages of zeros instead: dm 6.1 leaves those alone
// (it corrupts the submitter's pages in place, and never the shared zero
// page), later kernels corrupt a copy of them, and gdm, which only sees
// zeros arrive, corrupts them as later kernels do.
func withoutZeroes(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		if op.Kind != WriteZeroes {
			out = append(out, op)
		}
	}
	return out
}

// flakeyCycle is two flakey targets that go up and down together (up
// 2 s, down 2 s, from the same load), one without features and one that
// drops writes: one timeline serves both.
const flakeyCycle = "0 4096 flakey $0 0 2 2\n4096 4096 flakey $0 4096 2 2 1 drop_writes"

// flakeyCycleScript reloads table, restarting its clock on both sides
// after the attach, and runs a set of writes and reads on each half of the
// device 0.5 s into the first up interval, 2.5 s (down), and 4.5 s (up
// again). Each set must finish 0.1 s before its interval ends: 1.4 s for
// a few 4 KiB ops, tens of milliseconds each under TCG, so that only a
// stall of over a second can fail it (and then as "too slow", never as a
// wrong answer).
func flakeyCycleScript(table string) []Op {
	const ms = time.Millisecond
	ops := []Op{{Kind: Reload, Arg: table}, {Kind: Resume}}
	for i, at := range []time.Duration{500 * ms, 2500 * ms, 4500 * ms} {
		for _, half := range []int64{0, 4096 * 512} {
			base := half + int64(i)*65536
			for _, op := range []Op{
				{Kind: Write, Off: base, Len: 4096, Seed: 400 + uint64(half) + uint64(i)},
				{Kind: Read, Off: base, Len: 4096},
				{Kind: Read, Off: half, Len: 4096},
			} {
				op.At, op.Until = at, at+1400*ms
				ops = append(ops, op)
			}
		}
		ops = append(ops, Op{Kind: Flush, At: at, Until: at + 1400*ms})
	}
	for _, half := range []int64{0, 4096 * 512} {
		ops = append(ops, Op{Kind: Read, Off: half, Len: 4 * 65536, At: 4500 * ms, Until: 5900 * ms})
	}
	return ops
}
