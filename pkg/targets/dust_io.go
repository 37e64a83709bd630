package targets

import (
	"context"
	"fmt"
)

// dust's I/O is linear's plus the bad-block rules, which apply only while
// the target is enabled (in bypass mode dm checks nothing: reads pass and
// writes leave the list alone). dm splits I/O at block boundaries and
// judges each piece by its block; gdm judges a request by every block it
// touches, which comes to the same: a read touching a bad block fails with
// EIO, and a write is written everywhere except on blocks whose write
// fails. The context is ignored as in linear: pread and pwrite cannot be
// cancelled.

// readFault is the error a read of [off, off+n) gets, nil if none.
func (d *dust) readFault(off, n int64) error {
	if n <= 0 || !d.enabled.Load() {
		return nil
	}
	if b, bad := d.bad.anyIn(d.blocks(off, n)); bad {
		d.faults.Add(FaultReadError)
		return fmt.Errorf("%w %d", ErrBadBlock, b)
	}
	return nil
}

func (d *dust) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := d.readFault(off, int64(len(p))); err != nil {
		return err
	}
	return d.dev.ReadAt(p, d.offset+off)
}

// SpliceTo fails as ReadAt does, else moves the range from the device.
func (d *dust) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	if err := d.readFault(off, n); err != nil {
		return err
	}
	return d.dev.SpliceTo(pipe, d.offset+off, n)
}

// WriteAt writes p, taking the bad blocks it covers off the list; with
// FUA it syncs the device after.
func (d *dust) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	err := d.written(off, int64(len(p)), func(o, n int64) error {
		return d.dev.WriteAt(p[o-off:o-off+n], d.offset+o)
	})
	if err == nil && flags&FUA != 0 {
		err = d.dev.Sync()
	}
	return err
}

// Trim and Zero change the data of their range, as a write does: dm maps
// them in the write direction, so they too remove the bad blocks they
// cover (dm looks at the first block of a discard only; gdm at all).
func (d *dust) Trim(_ context.Context, off, length int64) error {
	return d.written(off, length, func(o, n int64) error { return d.dev.Trim(d.offset+o, n) })
}

func (d *dust) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	return d.written(off, length, func(o, n int64) error { return d.dev.Zero(d.offset+o, n, flags) })
}

func (d *dust) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	return d.dev.Extents(d.offset+off, length, emit)
}

// written applies a write of [off, off+n) to the bad-block list and does
// it with do, on the whole range or, when some blocks' writes fail, on the
// pieces between them; then it answers ErrBadBlock.
func (d *dust) written(off, n int64, do func(off, n int64) error) error {
	if n <= 0 || !d.enabled.Load() {
		return do(off, n)
	}
	failed := d.bad.written(d.blocks(off, n))
	if len(failed) == 0 {
		return do(off, n)
	}
	d.faults.Add(FaultWriteError)
	end := off + n
	for _, b := range failed {
		start := int64(b<<d.blkShift) - d.offset // the failed block, in target bytes
		if start > off {
			if err := do(off, start-off); err != nil {
				return err
			}
		}
		off = max(off, start+int64(1)<<d.blkShift)
	}
	if off < end {
		if err := do(off, end-off); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w %d", ErrBadBlock, failed[0])
}
