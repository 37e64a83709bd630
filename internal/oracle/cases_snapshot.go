package oracle

// SnapshotCases are the snapshot target's cases. Each case's one table
// holds an origin and its snapshot side by side, so that the one-device
// Case model fits: sectors [0, 8192) are `snapshot-origin $0`, sectors
// [8192, 16384) a snapshot of the same 4 MiB of $0 with its COW on $1.
// Writes to the first half copy to the second; the final contents of $1
// compare gdm's COW device byte for byte with the kernel's, and status
// compares the usage line. Not yet covered here (they need more than one
// device per case, or a smaller disk): origin and snapshot as separate
// devices, a full COW, and reading a COW the other side wrote.
func SnapshotCases() []Case {
	p := Pattern
	return []Case{
		{Name: "snapshot-P-8", Seed: 201, Devs: []Init{p(61), Zeros},
			Table: "0 8192 snapshot-origin $0\n8192 8192 snapshot $0 $1 P 8", Script: snapshotScript(false)},
		{Name: "snapshot-PO-32", Seed: 202, Devs: []Init{p(62), Zeros},
			Table: "0 8192 snapshot-origin $0\n8192 8192 snapshot $0 $1 PO 32", Script: snapshotScript(false)},
		{Name: "snapshot-N-16", Seed: 203, Devs: []Init{p(63), Zeros},
			Table: "0 8192 snapshot-origin $0\n8192 8192 snapshot $0 $1 N 16", Script: snapshotScript(true)},
		{Name: "snapshot-P-reload", Seed: 204, Devs: []Init{p(64), Zeros},
			Table: "0 8192 snapshot-origin $0\n8192 8192 snapshot $0 $1 P 8", Script: snapshotReloadScript()},
	}
}

// snapHalf is where the snapshot half of a snapshot case's device starts.
const snapHalf = 4 << 20

// snapshotScript writes the origin half (one sector, sectors at a chunk's
// end, a whole chunk), writes the snapshot half where it has and has not
// been copied to, and reads both halves whole. Each write of a P case stays
// in one 4 KiB chunk: dm commits the exceptions of a write that spans
// chunks in the order their copies finish, so the pairs of one area could
// lie in another order on the two sides with the same meaning. N keeps no
// pairs on disk, and its cases (wide) write across chunks, up to 1 MiB.
func snapshotScript(wide bool) []Op {
	big := int64(4096)
	if wide {
		big = 1 << 20
	}
	return []Op{
		{Kind: Read, Off: snapHalf, Len: 1 << 20},
		{Kind: Write, Off: 512, Len: 512, Seed: 1},
		{Kind: Write, Off: 4096 - 1024, Len: 1024, Seed: 2},
		{Kind: WriteFUA, Off: 1 << 20, Len: big, Seed: 3},
		{Kind: Read, Off: snapHalf, Len: 4 << 20},
		{Kind: Write, Off: snapHalf + 1024, Len: 1024, Seed: 4},
		{Kind: Write, Off: snapHalf + 3<<20, Len: big, Seed: 5},
		{Kind: Flush},
		{Kind: Write, Off: 1<<20 + 4096, Len: 4096, Seed: 6},
		{Kind: Read, Off: 0, Len: 8 << 20},
	}
}

// snapshotReloadScript hands the snapshot over to a new table (dm's
// handover) after a suspend, and goes on writing and reading.
func snapshotReloadScript() []Op {
	return []Op{
		{Kind: Write, Off: 0, Len: 4096, Seed: 7},
		{Kind: Suspend}, {Kind: Resume},
		{Kind: Write, Off: 128 << 10, Len: 4096, Seed: 8},
		{Kind: Reload, Arg: "0 8192 snapshot-origin $0\n8192 8192 snapshot $0 $1 P 8"}, {Kind: Resume},
		{Kind: Write, Off: 256 << 10, Len: 4096, Seed: 9},
		{Kind: Read, Off: 0, Len: 8 << 20},
	}
}
