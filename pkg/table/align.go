package table

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrAlign is a table whose targets' areas on their devices, or whose
// targets' boundaries, fall inside a logical block (see checkAreas and
// checkAlignment).
var ErrAlign = errors.New("not aligned to the logical block size")

// checkAreas refuses target i (tg, just made) when one of its areas on a
// device is not aligned to the target's logical block size, as dm's
// device_area_is_invalid does at load: the target's block size is the
// largest of its devices' (dm_set_device_limits) and its own
// (targets.BlockSizer: crypt's sector_size, dm's io_hints), and each area's
// start and length on its device must be whole blocks of it. A linear
// target at sector 1 of a device of 4 KiB blocks is refused; a striped
// target's legs are checked against the largest block of all its legs.
// It also keeps the devices' largest block size for checkAlignment.
func (b *builder) checkAreas(i int, tg targets.Target, areas []targets.Area) error {
	devBlock := int64(targets.SectorSize)
	for _, a := range areas {
		devBlock = max(devBlock, a.Dev.LogicalBlockSize())
	}
	if devBlock > targets.SectorSize {
		if b.devShifts == nil {
			b.devShifts = make([]uint8, len(b.begins))
		}
		b.devShifts[i] = uint8(bits.TrailingZeros64(uint64(devBlock / targets.SectorSize)))
	}
	block := devBlock
	if bs, ok := tg.(targets.BlockSizer); ok {
		block = max(block, int64(bs.LogicalBlockSize()))
	}
	if block == targets.SectorSize {
		return nil
	}
	perBlock := uint64(block / targets.SectorSize)
	for _, a := range areas {
		what, n := "start", a.Start
		if a.Start%perBlock == 0 {
			what, n = "len", a.Sectors
		}
		if n%perBlock != 0 {
			return fmt.Errorf("%w: %s=%d not aligned to h/w logical block size %d of %s",
				ErrAlign, what, n, block, a.Dev.Path())
		}
	}
	return nil
}

// devBlockSectors is target i's devices' largest logical block size, in
// sectors (1 for a target without devices, as zero and error are).
func (b *builder) devBlockSectors(i int) uint64 {
	if b.devShifts == nil {
		return 1
	}
	return 1 << b.devShifts[i]
}

// checkAlignment refuses a table that dm refuses for the alignment of its
// targets to the table's logical block size (LogicalBlockSize: the
// largest of its targets' io_hints, crypt's sector_size, and of their
// devices' logical block sizes), as dm's
// validate_hardware_logical_block_alignment does: any I/O aligned to the
// table's block size must be servable, and one that straddles targets is
// split at each boundary, so the piece each target gets must be whole
// blocks of that target's devices.
//
// dm walks the targets in order, keeping how far the next target starts
// past a block boundary of the table; what is left of that block
// ("remaining") falls to the next target, and must be whole blocks of its
// devices (512 for files and for targets without devices), unless the
// target is shorter than that. The table must also end on a block
// boundary. So a crypt of 4096-byte sectors on a file after a linear of 7
// sectors is refused when it ends the table, and taken when another
// target of 1 sector follows (crypt's io_hints do not count in the walk,
// only devices do: the crypt target checks its I/O's alignment on the
// device itself, as dm-crypt does, targets.Placer telling it where it
// starts). A linear of 1 sector on a file followed by a linear on a
// device of 4 KiB blocks is refused at the second: the 7 sectors left of
// the first block would fall to a device that takes no less than 8.
//
// dm reports where its walk stopped in the kernel log ("table line N
// (start sect S len L) not aligned to h/w logical block size B"), N being
// the index of the target it stopped at counted from 0, or the number of
// targets when it ran to the end (then the target is the last one), and
// refuses the resume that makes the table live; gdm refuses at build,
// with the same words and the line number of that target.
func (b *builder) checkAlignment(t *Table) error {
	lbs := uint64(t.LogicalBlockSize())
	if lbs == targets.SectorSize {
		return nil
	}
	perBlock := lbs / targets.SectorSize
	var next, remaining uint64 // sectors, modulo perBlock
	n := len(t.targets)
	i := 0
	for ; i < n; i++ {
		length := uint64(t.sector(i+1) - t.sector(i))
		if remaining < length && remaining%b.devBlockSectors(i) != 0 {
			break
		}
		next = (next + length) % perBlock
		remaining = 0
		if next != 0 {
			remaining = perBlock - next
		}
	}
	if remaining == 0 {
		return nil
	}
	at := min(i, n-1)
	start := uint64(t.sector(at))
	return &LineError{Line: b.lineNo(at), Err: fmt.Errorf(
		"%w: table line %d (start sect %d len %d) not aligned to h/w logical block size %d",
		ErrAlign, i, start, uint64(t.sector(at+1))-start, lbs)}
}
