package oracle

import "slices"

// SnapshotCases are the snapshot targets' cases. Each has the origin and
// its snapshot as separate devices, as users make them: the case's own
// table is `snapshot-origin $0` over the whole disk, its More a snapshot
// of it with the COW on $1. Writes to the origin copy to the snapshot; the
// final contents of $1 compare gdm's COW device byte for byte with the
// kernel's, and status compares the usage line.
//
// Origin and snapshot are never put in one table at two offsets: dm's
// snapshot and snapshot-origin map by the sector of the whole device, not
// of their target (snapshot_map and origin_map take no target offset), so
// a snapshot at sector 8192 of a table reads origin sector 8192 where its
// first sector is, and gdm, which maps by the target's own sector, differs
// (a difference the oracle found; see the README's Testing section).
func SnapshotCases() []Case {
	p := Pattern
	return append([]Case{
		{Name: "snapshot-P-8", Seed: 201, Devs: []Init{p(61), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: snapshotScript(false)},
		{Name: "snapshot-PO-32", Seed: 202, Devs: []Init{p(62), Zeros},
			Table: snapOrigin, More: []string{snapTable("PO", "32")}, Script: snapshotScript(false)},
		{Name: "snapshot-N-16", Seed: 203, Devs: []Init{p(63), Zeros},
			Table: snapOrigin, More: []string{snapTable("N", "16")}, Script: snapshotScript(true), Scratch: []int{1}},
		{Name: "snapshot-P-reload", Seed: 204, Devs: []Init{p(64), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: snapshotReloadScript()},
	}, append(snapshotDeviceCases(), snapshotDiscardCases()...)...)
}

// snapBytes is the size of a snapshot case's devices (4 MiB, half a
// disk): every read of them is a TCG guest's time, on both sides.
const snapBytes = 4 << 20

// snapOrigin is the origin device's table of the snapshot cases.
const snapOrigin = "0 8192 snapshot-origin $0"

// snapTable is a snapshot of snapOrigin's 4 MiB with its COW on $1.
func snapTable(kind, chunk string) string { return "0 8192 snapshot $0 $1 " + kind + " " + chunk }

// lvmOrder is how a script starts once the snapshot exists: the origin is
// suspended and resumed, as LVM does around making a snapshot. dm's origin
// learns its snapshots' smallest chunk (where it splits writes) at resume;
// one resumed before its snapshot existed passes a write spanning chunks
// to the snapshot as one, and only its first chunk is copied (the oracle
// found this: gdm copies every chunk whatever the order).
var lvmOrder = []Op{{Kind: Suspend}, {Kind: Resume}}

// snapshotScript writes the origin (one sector, sectors at a chunk's end,
// a whole chunk), writes the snapshot where it has and has not been copied
// to, and reads both whole. Each write of a P case stays in one 4 KiB
// chunk: dm commits the exceptions of a write that spans chunks in the
// order their copies finish, so the pairs of one area could lie in another
// order on the two sides with the same meaning. N keeps no pairs on disk,
// and its cases (wide) write across chunks, up to 1 MiB: dm then places
// the copies in the order the pieces run, so an N case's COW device is
// Scratch, and what the snapshot reads is what compares.
func snapshotScript(wide bool) []Op {
	big := int64(4096)
	if wide {
		big = 1 << 20
	}
	ops := append(slices.Clone(lvmOrder),
		Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1},
		Op{Kind: Write, Off: 512, Len: 512, Seed: 1},
		Op{Kind: Write, Off: 4096 - 1024, Len: 1024, Seed: 2},
		Op{Kind: WriteFUA, Off: 1 << 20, Len: big, Seed: 3},
		Op{Kind: Read, Off: 0, Len: 4 << 20, Dev: 1},
		Op{Kind: Write, Off: 1024, Len: 1024, Seed: 4, Dev: 1},
		Op{Kind: Write, Off: 3 << 20, Len: big, Seed: 5, Dev: 1},
		Op{Kind: Flush, Dev: 1},
		Op{Kind: Write, Off: 1<<20 + 4096, Len: 4096, Seed: 6},
	)
	return append(append(ops, ReadAll(snapBytes)...), onDev(1, ReadAll(snapBytes))...)
}

// snapshotReloadScript hands the snapshot over to a new table (dm's
// handover) after a suspend, reloads the origin too, and goes on writing
// and reading.
func snapshotReloadScript() []Op {
	ops := append(slices.Clone(lvmOrder),
		Op{Kind: Write, Off: 0, Len: 4096, Seed: 7},
		Op{Kind: Suspend, Dev: 1}, Op{Kind: Resume, Dev: 1},
		Op{Kind: Write, Off: 128 << 10, Len: 4096, Seed: 8},
		Op{Kind: Reload, Arg: snapTable("P", "8"), Dev: 1}, Op{Kind: Resume, Dev: 1},
		Op{Kind: Write, Off: 256 << 10, Len: 4096, Seed: 9},
		Op{Kind: Write, Off: 384 << 10, Len: 4096, Seed: 10, Dev: 1},
		Op{Kind: Reload, Arg: snapOrigin}, Op{Kind: Resume},
		Op{Kind: Write, Off: 512 << 10, Len: 4096, Seed: 11},
	)
	return append(append(ops, ReadAll(snapBytes)...), onDev(1, ReadAll(snapBytes))...)
}
