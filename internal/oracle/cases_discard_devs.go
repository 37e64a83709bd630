package oracle

// NoDiscardDisk is the index ($N) of the guest's disk that takes neither
// discards nor write-zeroes (virtio-blk with discard=off and
// write-zeroes=off, e2e/oracle_test.go), on each side. It comes after the
// ordinary disks; a change to how many there are moves it.
const NoDiscardDisk = 8

// DiscardOnlyDisk is the index ($N) of the guest's disk that takes
// discards but no write-zeroes (virtio-blk with write-zeroes=off), as many
// SATA SSDs do, on each side; it comes right after the no-discard disk.
const DiscardOnlyDisk = NoDiscardDisk + 1

// DiscardDevCases are tables over that disk. dm 6.1 gives a table
// discards only where every target takes them and every target that
// sends them on has devices that take them (dm_table_supports_discards):
// log-writes takes them on its own (discards_supported), logs them and
// leaves its data device alone. So a discard is EOPNOTSUPP on both sides
// (gdm's export offers no TRIM, and the kernel's nbd client refuses it as
// dm's queue does) wherever a linear, striped, crypt or delay target
// relies on the disk, whatever else the table holds (a snapshot with
// discard_zeroes_cow whose origin or COW device it is too), and takes
// effect where only log-writes does. A write-zeroes becomes zeros written on
// both sides (the disk has no write-zeroes; 6.1's nbd client has none at
// all), so it compares as data. Every other disk starts zeroed; the
// no-discard disk starts with a pattern, so a discard that reached it
// would show.
func DiscardDevCases() []Case {
	d := "$8"
	return []Case{
		{Name: "discard-dev-linear", Seed: 401, Devs: noDiscardDevs(nil),
			Table: "0 16384 linear " + d + " 0"},
		// A discard is refused over the linear target on an ordinary disk
		// too: the table as a whole takes none.
		{Name: "discard-dev-mixed", Seed: 402, Devs: noDiscardDevs(map[int]Init{0: Pattern(402)}),
			Table: "0 8192 linear $0 0\n8192 8192 linear " + d + " 8192"},
		{Name: "discard-dev-striped", Seed: 403, Devs: noDiscardDevs(map[int]Init{0: Pattern(403)}),
			Table: "0 16384 striped 2 8 $0 0 " + d + " 0"},
		{Name: "discard-dev-crypt", Seed: 404, Devs: noDiscardDevs(nil),
			Table: "0 16384 crypt aes-xts-plain64 " + cryptKey256 + " 0 " + d + " 0 1 allow_discards"},
		{Name: "discard-dev-delay", Seed: 405, Devs: noDiscardDevs(nil),
			Table: "0 16384 delay " + d + " 0 0"},
		// log-writes takes discards over it, logs them, and leaves the
		// disk's data as it was; next to a linear target on an ordinary
		// disk the table takes discards, and one across both reaches that
		// disk.
		{Name: "discard-dev-log-writes", Seed: 406, Devs: noDiscardDevs(nil),
			Table: "0 8192 log-writes " + d + " $1", Script: logWritesScript(406)},
		{Name: "discard-dev-log-writes-mixed", Seed: 407, Devs: noDiscardDevs(map[int]Init{0: Pattern(407)}),
			Table:  "0 8192 log-writes " + d + " $1\n8192 8192 linear $0 8192",
			Script: append(logWritesScript(407), crossDiscard(8192*512)...)},
		// A snapshot with discard_zeroes_cow sends discards to its origin
		// and its COW device (dm's lists both): either on the disk leaves
		// it none. Its COW starts zeroed (a new store).
		{Name: "discard-dev-snapshot-cow", Seed: 408, Devs: noDiscardDevs(map[int]Init{0: Pattern(408), NoDiscardDisk: Zeros}),
			Table: snapOrigin, More: []string{"0 8192 snapshot $0 " + d + " P 8 1 discard_zeroes_cow"}, Script: snapshotDiscardScript(4096)},
		{Name: "discard-dev-snapshot-origin", Seed: 409, Devs: noDiscardDevs(nil),
			Table: "0 8192 snapshot-origin " + d, More: []string{"0 8192 snapshot " + d + " $1 P 8 1 discard_zeroes_cow"},
			Script: snapshotDiscardScript(4096)},
		// Over the disk with discard but no write-zeroes, a table takes
		// discards and passes them down: the disk's pattern reads back
		// as zeros where they reached it (qemu punches its image; an
		// unaligned discard of a few KiB may punch nothing, on both
		// sides alike, so the scripts discard large ranges too). gdm
		// once sent them as write-zeroes, which the disk refused, and
		// then dropped them all.
		{Name: "discard-only-dev-linear", Seed: 410, Devs: discardOnlyDevs(nil),
			Table:  "0 16384 linear $9 0",
			Script: append(Standard(410, "0 16384 linear $9 0"), crossDiscard(4096*512)...)},
		{Name: "discard-only-dev-striped", Seed: 411, Devs: discardOnlyDevs(map[int]Init{0: Pattern(411)}),
			Table: "0 16384 striped 2 16 $0 0 $9 0", Script: discardWholeScript(16384 * 512)},
		{Name: "discard-only-dev-crypt", Seed: 412, Devs: discardOnlyDevs(nil),
			Table:  "0 16384 crypt aes-xts-plain64 " + cryptKey256 + " 0 $9 0 1 allow_discards",
			Script: discardWholeScript(16384 * 512)},
	}
}

// discardOnlyDevs are a case's disks up to the discard-only one, as set:
// zeros, or for the discard-only one a pattern, where set says nothing.
func discardOnlyDevs(set map[int]Init) []Init { return devsUpTo(DiscardOnlyDisk, set) }

// discardWholeScript reads a device of size bytes, discards 1 MiB in its
// middle and a sector-odd range after it, and reads it all again.
func discardWholeScript(size int64) []Op {
	ops := ReadAll(size)
	ops = append(ops, Op{Kind: Discard, Off: size / 4, Len: 1 << 20}, Op{Kind: Discard, Off: size/2 + 3584, Len: 77 * 512})
	return append(ops, ReadAll(size)...)
}

// noDiscardDevs are a case's disks up to the no-discard one, as set:
// zeros, or for the no-discard one a pattern, where set says nothing.
func noDiscardDevs(set map[int]Init) []Init { return devsUpTo(NoDiscardDisk, set) }

// devsUpTo are a case's disks up to disk, as set: zeros, or for disk
// itself a pattern, where set says nothing.
func devsUpTo(disk int, set map[int]Init) []Init {
	devs := make([]Init, disk+1)
	devs[disk] = Pattern(uint64(disk) * 100)
	for i, init := range set {
		devs[i] = init
	}
	return devs
}

// crossDiscard discards 64 KiB each side of byte b and reads the range,
// then zeroes 8 KiB each side of it and reads it again.
func crossDiscard(b int64) []Op {
	return []Op{
		{Kind: Discard, Off: b - 65536, Len: 131072},
		{Kind: Read, Off: b - 65536, Len: 131072},
		{Kind: WriteZeroes, Off: b - 8192, Len: 16384},
		{Kind: Read, Off: b - 65536, Len: 131072},
	}
}
