package table

import (
	"errors"
	"fmt"

	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrAlign is a table whose targets' boundaries fall inside a logical
// block of the table (see checkAlignment).
var ErrAlign = errors.New("not aligned to the logical block size")

// checkAlignment refuses a table that dm refuses for the alignment of its
// targets to the table's logical block size (LogicalBlockSize: the largest
// of its targets' io_hints, crypt's sector_size).
//
// dm walks the targets in order, keeping how far the next target starts
// past a logical block boundary, and refuses the table when a block that
// straddles targets cannot be split at the boundary: that depends on each
// target's backing devices' own logical block size, and a backing device
// of gdm is taken to have blocks of 512 bytes (files do; gdm does not read
// a block device's). With 512-byte backing blocks every split is
// allowed, and what is left of dm's rule is that the whole table must end
// on a block boundary. A crypt of 4096-byte sectors after a linear of 7
// sectors is refused when it ends the table, and taken when another
// target of 1 sector follows. The crypt target then checks its I/O's
// alignment on the device, as dm-crypt does (targets.Placer tells it
// where it starts): a block wholly inside it is served, and one it shares
// fails.
//
// dm reports the line where its walk stopped, the last one, in the
// kernel log ("table line N (start sect S len L) not aligned to h/w
// logical block size B"), and refuses the resume that makes the table
// live; gdm refuses at build, with the same words and the line number in
// the text.
func (b *builder) checkAlignment(t *Table) error {
	lbs := uint64(t.LogicalBlockSize())
	if lbs == targets.SectorSize {
		return nil
	}
	if (b.next*targets.SectorSize)%lbs == 0 {
		return nil
	}
	last := len(t.targets) - 1
	start := uint64(t.sector(last))
	return &LineError{Line: b.lineNo(last), Err: fmt.Errorf(
		"%w: table line %d (start sect %d len %d) not aligned to h/w logical block size %d",
		ErrAlign, last+1, start, b.next-start, lbs)}
}
