package oracle

// The cases over the guest's disks of 4096-byte logical blocks (FourK,
// disks4k.go): dm's logical block size rules, which gdm follows from
// reading dm-table.c. A table's logical block size is the largest of its
// targets' and of its devices' (the attached device's, compared with dm's
// by every script); a target's area on a device must be whole blocks of
// its own block size (device_area_is_invalid); the table's boundaries must
// fall so that no block of the table leaves a target a piece smaller than
// its devices' blocks (validate_hardware_logical_block_alignment); a
// snapshot's chunk must be whole blocks of its devices. I/O that is not
// whole blocks of the device is refused by the block layer on both sides
// (EINVAL under O_DIRECT), before dm or gdm sees it.

// Cases4K are the script cases over 4K disks: the standard script as it
// is (its single sectors refused) on a linear, and aligned standard
// scripts, with unaligned probes, on tables mixing 512 and 4K disks,
// striped, crypt of 512-byte sectors over a 4K disk, and a snapshot.
func Cases4K() []Case {
	p := Pattern
	crypt := "0 16384 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0 1 sector_size:512"
	mixed := `
0 4 linear $0 0
4 4 linear $0 100
8 4096 linear $1 64
4104 4096 linear $0 1000
8200 8 linear $1 8000`
	return []Case{
		{Name: "4k-linear", Seed: 401, Devs: []Init{p(411)}, FourK: []int{0},
			Table: "0 16384 linear $0 0"},
		{Name: "4k-linear-offset", Seed: 402, Devs: []Init{p(412)}, FourK: []int{0},
			Table: "0 8000 linear $0 4320", Script: script4K(402, "0 8000 linear $0 4320")},
		{Name: "4k-mixed-512", Seed: 403, Devs: []Init{p(413), p(414)}, FourK: []int{1},
			Table: mixed, Script: script4K(403, mixed)},
		{Name: "4k-striped", Seed: 404, Devs: []Init{p(415), p(416)}, FourK: []int{0, 1},
			Table: "0 16384 striped 2 16 $0 0 $1 8", Script: script4K(404, "0 16384 striped 2 16 $0 0 $1 8")},
		// A 512 leg and a 4K leg: the 4K leg's block is the target's.
		{Name: "4k-striped-mixed", Seed: 405, Devs: []Init{p(417), p(418)}, FourK: []int{1},
			Table: "0 16368 striped 2 8 $0 8 $1 0", Script: script4K(405, "0 16368 striped 2 8 $0 8 $1 0")},
		{Name: "4k-striped-half-block-chunk", Seed: 406, Devs: []Init{p(419), p(420)}, FourK: []int{0, 1},
			Table: "0 16384 striped 2 4 $0 0 $1 0", Script: halfBlockChunkScript()},
		{Name: "4k-crypt-512-sectors", Seed: 407, Devs: []Init{p(421)}, FourK: []int{0},
			Table: crypt, Script: script4K(407, crypt)},
		{Name: "4k-snapshot-P-8", Seed: 408, Devs: []Init{p(422), Zeros}, FourK: []int{0, 1},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: snapshotScript(false)},
		{Name: "4k-log-writes-log", Seed: 410, Devs: []Init{p(424), Zeros}, FourK: []int{1},
			Table: "0 8192 log-writes $0 $1", Script: logWritesScript(410)},
		{Name: "4k-log-writes-data", Seed: 411, Devs: []Init{p(425), Zeros}, FourK: []int{0},
			Table: "0 8192 log-writes $0 $1", Script: logWritesScript(411)},
		{Name: "4k-log-writes-both", Seed: 412, Devs: []Init{p(426), Zeros}, FourK: []int{0, 1},
			Table: "0 8192 log-writes $0 $1", Script: logWritesScript(412)},
		{Name: "4k-delay", Seed: 409, Devs: []Init{p(423)}, FourK: []int{0},
			Table: "0 16384 delay $0 0 0", Script: script4K(409, "0 16384 delay $0 0 0")},
	}
}

// script4K is the standard script of seed with each op widened to whole
// 4 KiB blocks (a read or write of the bytes around it), so that its
// bytes compare on a device of 4 KiB blocks, then probes4K.
func script4K(seed uint64, table string) []Op {
	const k = 4096
	size, _ := Boundaries(table)
	var ops []Op
	for _, op := range Standard(seed, table) {
		if op.Len > 0 {
			end := min((op.Off+op.Len+k-1)/k*k, size)
			op.Off = op.Off / k * k
			op.Len = end - op.Off
		}
		ops = append(ops, op)
	}
	return append(probes4K(), ops...)
}

// halfBlockChunkScript is for a striped table of 2 KiB chunks over legs
// of 4 KiB blocks, which dm takes (its areas on the legs are whole
// blocks): a read or write of one block is split into a 2 KiB piece for
// each leg, which the leg fails (EIO, and each leg shows D). Only such
// requests are made: a longer one gives a leg pieces that the block layer
// may or may not merge into whole blocks before the disk sees them (in
// the guest, an 8 KiB write at 8 KiB went through and a 16 KiB read at 0
// failed), which neither side can promise. A discard is one range per
// leg, as dm sends it: whole blocks on each leg for 16 KiB at 0, half a
// block for 4 KiB. A write-zeroes of 16 KiB is left out: dm's took it (one
// whole range per leg) where gdm's failed. The guest's nbd driver (6.1)
// sends no NBD_CMD_WRITE_ZEROES (later kernels' does), so BLKZEROOUT
// reaches gdm as a write of zeros, which the target splits at chunks.
func halfBlockChunkScript() []Op {
	const k = 4096
	return []Op{
		{Kind: Write, Off: 0, Len: k, Seed: 1},
		{Kind: Read, Off: 0, Len: k},
		{Kind: WriteFUA, Off: 3 * k, Len: k, Seed: 2},
		{Kind: Read, Off: 5 * k, Len: k},
		{Kind: Discard, Off: 0, Len: 4 * k},
		{Kind: Discard, Off: 16 * k, Len: k},
		{Kind: WriteZeroes, Off: 20 * k, Len: k},
		{Kind: Flush},
	}
}

// probes4K are requests of one 512-byte sector at sector 1 (read, write,
// FUA write, discard, write-zeroes), and of one block at sector 1, which
// a device of 4 KiB blocks refuses, and the same at sector 0 and of a
// block, which it takes.
func probes4K() []Op {
	var ops []Op
	for _, at := range []struct{ off, n int64 }{{512, 512}, {512, 4096}, {0, 512}, {0, 4096}, {8192, 8192}} {
		ops = append(ops,
			Op{Kind: Write, Off: at.off, Len: at.n, Seed: uint64(at.off + at.n)},
			Op{Kind: Read, Off: at.off, Len: at.n},
			Op{Kind: WriteFUA, Off: at.off, Len: at.n, Seed: uint64(at.off + 2*at.n)},
			Op{Kind: Discard, Off: at.off, Len: at.n},
			Op{Kind: WriteZeroes, Off: at.off, Len: at.n},
			Op{Kind: Read, Off: 0, Len: 16384})
	}
	return ops
}

// Acceptance4K are tables over 4K disks that dm accepts or refuses:
// areas that are and are not whole blocks for each target type that has a
// device, snapshot chunks, and tables mixing a 512 and a 4K disk, whose
// boundaries dm walks.
func Acceptance4K() []Accept {
	on4K := func(want bool, t string, fourK ...int) Accept {
		if len(fourK) == 0 {
			fourK = []int{0}
		}
		return Accept{Table: t, Want: want, FourK: fourK}
	}
	crypt := "crypt aes-xts-plain64 " + cryptKey256 + " 0 "
	return []Accept{
		on4K(true, "0 16384 linear $0 0"),
		on4K(true, "0 8 linear $0 8"),
		on4K(false, "0 8 linear $0 1"),
		on4K(false, "0 8 linear $0 4"),
		on4K(false, "0 4 linear $0 0"),
		on4K(false, "0 12 linear $0 0"),
		on4K(true, "0 32 striped 2 8 $0 0 $1 0", 0, 1),
		on4K(true, "0 16 striped 2 4 $0 0 $1 0", 0, 1),
		on4K(false, "0 16 striped 2 8 $0 4 $1 0", 0, 1),
		on4K(false, "0 8 striped 2 4 $0 0 $1 0", 0, 1),
		on4K(false, "0 16 striped 2 8 $0 1 $1 0", 1), // the 512 leg, at a 4K leg's block size
		on4K(true, "0 16 striped 2 8 $0 8 $1 0", 1),
		on4K(true, "0 16 "+crypt+"$0 8"),
		on4K(false, "0 16 "+crypt+"$0 4"),
		on4K(false, "0 4 "+crypt+"$0 0"),
		on4K(true, "0 16 "+crypt+"$0 0 1 sector_size:512"),
		on4K(false, "0 16 "+crypt+"$0 1 1 sector_size:512"),
		on4K(true, "0 16 "+crypt+"$0 8 1 sector_size:4096"),
		on4K(true, "0 8 delay $0 8 0"),
		on4K(false, "0 8 delay $0 4 0"),
		on4K(false, "0 8 delay $0 0 0 $1 4 0", 0, 1),
		on4K(true, "0 8 delay $0 0 0 $1 8 0", 0, 1),
		on4K(false, "0 8 delay $0 0 0 $1 4 0", 1), // the write device alone is 4K
		on4K(true, "0 8 flakey $0 8 1 0"),
		on4K(false, "0 8 flakey $0 1 1 0"),
		on4K(false, "0 4 flakey $0 0 1 0"),
		on4K(true, "0 16384 snapshot $0 $1 N 8", 0, 1),
		on4K(false, "0 16384 snapshot $0 $1 N 4", 0, 1),
		on4K(false, "0 16384 snapshot $0 $1 N 4", 0), // origin 4K, COW 512
		on4K(false, "0 16384 snapshot $0 $1 N 4", 1), // COW 4K
		{Table: "0 16384 snapshot $0 $1 P 8", Want: true, FourK: []int{0, 1}, Zero: []int{1}},
		on4K(true, "0 16384 snapshot-origin $0"),
		on4K(true, "0 16384 log-writes $0 $1", 0, 1),
		on4K(true, "0 16384 log-writes $0 $1", 0), // data 4K, log 512
		on4K(true, "0 16384 log-writes $0 $1", 1), // log 4K, data 512
		on4K(false, "0 4 log-writes $0 $1", 0),
		on4K(false, "0 12 log-writes $0 $1", 0, 1),
		// A 512 disk ($0) and a 4K disk ($1) in one table: its block is
		// 4 KiB, and a boundary may fall inside a block only where the
		// rest of the block goes to 512 devices (or none).
		on4K(true, "0 8 linear $0 0\n8 8 linear $1 0", 1),
		on4K(true, "0 8 linear $1 0\n8 8 linear $0 3", 1),
		on4K(true, "0 4 linear $0 0\n4 4 linear $0 100\n8 8 linear $1 0", 1),
		on4K(true, "0 4 linear $0 0\n4 4 zero\n8 8 linear $1 0", 1),
		on4K(false, "0 4 linear $0 0\n4 8 linear $1 0\n12 4 linear $0 4", 1),
		on4K(false, "0 8 linear $1 0\n8 4 linear $0 0", 1),
		on4K(false, "0 1 linear $0 0\n1 8 linear $1 0\n9 7 linear $0 1", 1),
		on4K(false, "0 12 linear $0 0\n12 8 linear $1 0\n20 4 linear $0 12", 1),
		on4K(true, "0 3 linear $0 0\n3 1 zero\n4 4 linear $0 9\n8 8 "+crypt+"$1 8", 1),
		on4K(false, "0 4 linear $0 0\n4 8 "+crypt+"$1 8 1 sector_size:512\n12 4 linear $0 4", 1),
	}
}
