package oracle

import "slices"

// snapshotDiscardCases discard a snapshot that has discard_zeroes_cow
// (and, in the second, discard_passdown_origin): dm cuts a discard at
// chunks, zeroes an exception a piece covers whole, remaps a piece that
// covers part of an exception to the COW device (whose discard then
// zeroes it: the guest's disks unmap), ends a piece with no exception at
// once, and with passdown sends the whole range to the origin's device
// too, where chunks not copied read it from.
func snapshotDiscardCases() []Case {
	p := Pattern
	const features = " 1 discard_zeroes_cow"
	return []Case{
		{Name: "snapshot-discard-P-8", Seed: 216, Devs: []Init{p(77), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8") + features}, Script: snapshotDiscardScript(4096)},
		{Name: "snapshot-discard-PO-16-passdown", Seed: 217, Devs: []Init{p(78), Zeros},
			Table: snapOrigin, More: []string{snapTable("PO", "16") + " 2 discard_zeroes_cow discard_passdown_origin"},
			Script: snapshotDiscardScript(8192)},
		{Name: "snapshot-discard-P-8-off", Seed: 218, Devs: []Init{p(79), Zeros},
			Table: snapOrigin, More: []string{snapTable("P", "8")}, Script: snapshotDiscardScript(4096)},
	}
}

// snapshotDiscardScript makes exceptions in chunks 0, 2, 4, 5 and 6 by
// writing the snapshot (a chunk a write, as snapshotScript explains) and
// in chunk 10 by writing the origin, then discards the snapshot: chunk 0
// whole, part of chunk 2, part of chunk 3 (no exception), chunk 4's tail
// through chunk 6's head, part of chunk 10, and 64 KiB with no exception
// at all. Then it writes a discarded chunk and an origin chunk the
// discards passed over, and reads both devices whole.
func snapshotDiscardScript(chunk int64) []Op {
	at := func(c int64) int64 { return c * chunk }
	ops := slices.Clone(lvmOrder)
	for i, c := range []int64{0, 2, 4, 5, 6} {
		ops = append(ops, Op{Kind: Write, Off: at(c), Len: chunk, Seed: 60 + uint64(i), Dev: 1})
	}
	ops = append(ops,
		Op{Kind: Write, Off: at(10) + 512, Len: 512, Seed: 66},
		Op{Kind: Flush, Dev: 1},
		Op{Kind: Discard, Off: 0, Len: chunk, Dev: 1},
		Op{Kind: Discard, Off: at(2) + 512, Len: 1024, Dev: 1},
		Op{Kind: Discard, Off: at(3) + 512, Len: 1024, Dev: 1},
		Op{Kind: Discard, Off: at(4) + chunk/2, Len: 2 * chunk, Dev: 1},
		Op{Kind: Discard, Off: at(10), Len: chunk / 2, Dev: 1},
		Op{Kind: Discard, Off: 1 << 20, Len: 64 << 10, Dev: 1},
		Op{Kind: Discard, Off: at(7), Len: chunk},
		Op{Kind: Read, Off: 0, Len: at(12), Dev: 1},
		Op{Kind: Write, Off: 1024, Len: 512, Seed: 67, Dev: 1},
		Op{Kind: Write, Off: at(3), Len: 1024, Seed: 68},
		Op{Kind: Flush, Dev: 1},
	)
	return append(append(ops, ReadAll(snapBytes)...), onDev(1, ReadAll(snapBytes))...)
}
