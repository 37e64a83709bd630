package oracle

import "slices"

// snapshotDeviceCases are the snapshot cases the one-device model could
// not hold, made as SnapshotCases' are. Each P or PO write stays in one
// chunk, for the reason snapshotScript gives, so that the COW devices
// compare byte for byte.
//
//   - snapshot-cross-*: the second half loads the COW device the other side
//     wrote (dm's into gdm, gdm's into dm), reads the snapshot whole, and
//     goes on copying and writing into it: the store format both ways.
//   - snapshot-full-P: origin writes fill the COW; the snapshot turns
//     Invalid (status, EIO on reads and writes) and the origin goes on. The
//     other side then loads that COW: Invalid from the start.
//   - snapshot-full-PO: snapshot writes fill the COW; the snapshot turns
//     Overflow, fails every write from then on and stays readable. The
//     other side then loads that COW: overflow is not kept on disk, so it
//     takes writes to the chunks it has again.
//   - snapshot-full-PO-reload: snapshot writes overflow the PO snapshot,
//     then its table is reloaded (dm's handover): the new table is still
//     Overflow (dm hands the state over with the exceptions; it is kept
//     nowhere on the device) and fails a write to a chunk it has.
//   - snapshot-cross-P-0: a cross case whose first table gives chunk size
//     0 and its features in another order than dm prints them, and whose
//     second gives 8 over the first's 32-sector header: the table text
//     compares the chunk size in use (32 both times) and dm's feature
//     order, not the line as written.
func snapshotDeviceCases() []Case {
	p := Pattern
	origin, snap := snapOrigin, snapTable
	// The full cases need a COW smaller than what the origin can fill:
	// an origin of a whole disk over 512 KiB chunks (a COW of 16).
	fullOrigin := "0 16384 snapshot-origin $0"
	fullSnap := func(kind string) string { return "0 16384 snapshot $0 $1 " + kind + " 1024" }
	return []Case{
		{Name: "snapshot-cross-P-8", Seed: 211, Devs: []Init{p(71), Zeros},
			Table: origin, More: []string{snap("P", "8")}, Script: crossFirst(4096),
			Then: &Half{Table: origin, More: []string{snap("P", "8")}, Script: crossSecond(4096)}},
		{Name: "snapshot-cross-PO-16", Seed: 212, Devs: []Init{p(72), Zeros},
			Table: origin, More: []string{snap("PO", "16")}, Script: crossFirst(8192),
			Then: &Half{Table: origin, More: []string{snap("PO", "16")}, Script: crossSecond(8192)}},
		{Name: "snapshot-cross-P-0", Seed: 215, Devs: []Init{p(76), Zeros},
			Table: origin, More: []string{snap("P", "0") + " 2 discard_passdown_origin discard_zeroes_cow"}, Script: crossFirst(16384),
			Then: &Half{Table: origin, More: []string{snap("P", "8")}, Script: crossSecond(16384)}},
		{Name: "snapshot-full-P", Seed: 213, Devs: []Init{p(74), Zeros},
			Table: fullOrigin, More: []string{fullSnap("P")}, Script: fullScript(0),
			Then: &Half{Table: fullOrigin, More: []string{fullSnap("P")}, Script: fullSecond()}},
		{Name: "snapshot-full-PO", Seed: 214, Devs: []Init{p(75), Zeros},
			Table: fullOrigin, More: []string{fullSnap("PO")}, Script: fullScript(1),
			Then: &Half{Table: fullOrigin, More: []string{fullSnap("PO")}, Script: fullSecond()}},
		{Name: "snapshot-full-PO-reload", Seed: 216, Devs: []Init{p(77), Zeros},
			Table: fullOrigin, More: []string{fullSnap("PO")}, Script: fullReloadScript(fullSnap("PO"))},
	}
}

// onDev puts ops on device dev.
func onDev(dev int, ops []Op) []Op {
	for i := range ops {
		ops[i].Dev = dev
	}
	return ops
}

// crossFirst writes the origin (a sector, a sector at a chunk's end, whole
// chunks, a FUA write) and the snapshot (where the origin copied and where
// it did not, part of a chunk and whole ones), chunk bytes a chunk, and
// reads both whole.
func crossFirst(chunk int64) []Op {
	ops := append(slices.Clone(lvmOrder),
		Op{Kind: Write, Off: 512, Len: 512, Seed: 1},
		Op{Kind: Write, Off: chunk - 512, Len: 512, Seed: 2},
		Op{Kind: Write, Off: 1 << 20, Len: chunk, Seed: 3},
		Op{Kind: WriteFUA, Off: 2 << 20, Len: chunk, Seed: 4},
		Op{Kind: Write, Off: 1 << 20, Len: 1024, Seed: 5, Dev: 1},
		Op{Kind: Write, Off: 3<<20 + 1024, Len: 1024, Seed: 6, Dev: 1},
		Op{Kind: Write, Off: 3<<20 + 512<<10, Len: chunk, Seed: 7, Dev: 1},
		Op{Kind: Flush},
		Op{Kind: Write, Off: 3 << 20, Len: chunk, Seed: 8},
		Op{Kind: Flush},
	)
	return append(append(ops, ReadAll(snapBytes)...), onDev(1, ReadAll(snapBytes))...)
}

// crossSecond runs on the other side's COW device: the snapshot must read
// as it did, then new origin writes copy after the loaded exceptions and
// snapshot writes land in loaded and new ones.
func crossSecond(chunk int64) []Op {
	ops := append(slices.Clone(lvmOrder), onDev(1, ReadAll(snapBytes))...)
	ops = append(ops,
		Op{Kind: Write, Off: 2<<20 + 512<<10, Len: 512, Seed: 11},
		Op{Kind: Write, Off: 1 << 20, Len: chunk, Seed: 12},
		Op{Kind: Write, Off: 3<<20 + 512<<10 + 512, Len: 512, Seed: 13, Dev: 1},
		Op{Kind: Write, Off: 3 << 19, Len: chunk, Seed: 14, Dev: 1},
		Op{Kind: Flush},
	)
	return append(append(ops, ReadAll(snapBytes)...), onDev(1, ReadAll(snapBytes))...)
}

// fullScript fills a 16-chunk COW (512 KiB chunks: a header, a metadata
// area and 14 data chunks) by writing one sector into each of 15 chunks of
// device dev (0, the origin: each write copies; 1, the snapshot: each
// allocates), then reads and writes both devices (the backing devices'
// comparison reads the rest).
func fullScript(dev int) []Op {
	const chunk = 512 << 10
	ops := slices.Clone(lvmOrder)
	for i := int64(0); i < 15; i++ {
		ops = append(ops, Op{Kind: Write, Off: i*chunk + 4096, Len: 512, Seed: 20 + uint64(i), Dev: dev})
	}
	ops = append(ops,
		Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1},
		Op{Kind: Write, Off: chunk, Len: 512, Seed: 40, Dev: 1},
		Op{Kind: Write, Off: 15*chunk + 512, Len: 512, Seed: 41, Dev: 1},
		Op{Kind: Flush, Dev: 1},
	)
	return append(ops, Op{Kind: Read, Off: 0, Len: 1 << 20}, Op{Kind: Read, Off: 7 << 20, Len: 1 << 20},
		Op{Kind: Read, Off: 7 << 20, Len: 1 << 20, Dev: 1})
}

// fullReloadScript overflows the snapshot (device 1, table snap) with
// snapshot writes, as fullScript(1) does, reloads it with the same table,
// and writes it where it has the chunk (which an overflowed snapshot
// fails) and the origin where the snapshot has the chunk (no copy, so the
// snapshot stays Overflow for the status compared at the end).
func fullReloadScript(snap string) []Op {
	const chunk = 512 << 10
	ops := slices.Clone(lvmOrder)
	for i := int64(0); i < 15; i++ {
		ops = append(ops, Op{Kind: Write, Off: i*chunk + 4096, Len: 512, Seed: 60 + uint64(i), Dev: 1})
	}
	return append(ops,
		Op{Kind: Reload, Arg: snap, Dev: 1}, Op{Kind: Resume, Dev: 1},
		Op{Kind: Write, Off: chunk + 1024, Len: 512, Seed: 80, Dev: 1},
		Op{Kind: Write, Off: 2*chunk + 1024, Len: 512, Seed: 81},
		Op{Kind: Flush},
		Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1},
		Op{Kind: Read, Off: 0, Len: 1 << 20},
	)
}

// fullSecond loads a filled COW: reads the snapshot, writes a chunk it
// has and one it has not, and writes the origin where nothing was copied.
func fullSecond() []Op {
	const chunk = 512 << 10
	ops := append(slices.Clone(lvmOrder), onDev(1, ReadAll(DiskBytes))...)
	return append(ops,
		Op{Kind: Write, Off: chunk + 1024, Len: 512, Seed: 50, Dev: 1},
		Op{Kind: Write, Off: 15*chunk + 1024, Len: 512, Seed: 51, Dev: 1},
		Op{Kind: Write, Off: 15*chunk + 2048, Len: 512, Seed: 52},
		Op{Kind: Read, Off: 0, Len: 1 << 20, Dev: 1},
		Op{Kind: Read, Off: 7 << 20, Len: 1 << 20},
	)
}
