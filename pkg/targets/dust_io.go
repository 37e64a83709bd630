package targets

import (
	"context"
	"fmt"
)

// dust's I/O is linear's plus the bad-block rules, which apply only while
// the target is enabled (in bypass mode dm checks nothing: reads pass and
// writes leave the list alone). dm splits I/O at block boundaries counted
// from the target's start and judges each piece by the device block of
// its first sector (see judged): a read with a piece judged by a bad
// block fails with EIO, and a write is written everywhere but on the
// pieces whose write fails. The context is ignored as in linear: pread and
// pwrite cannot be cancelled.

// readFault is the error a read of [off, off+n) gets, nil if none.
func (d *dust) readFault(off, n int64) error {
	if n <= 0 || !d.enabled.Load() {
		return nil
	}
	if b, bad := d.bad.anyIn(d.judged(off, n)); bad {
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

// Trim is one discard bio in dm: dm cuts discards at target boundaries
// only, never at dust's block size (its max_io_len splits reads and
// writes), so dust_map judges the whole range by the device block of its
// first sector. Enabled, that block, if listed, fails the discard while
// its write-fail count lasts (nothing is discarded) and otherwise leaves
// the list; other listed blocks in the range stay listed.
func (d *dust) Trim(_ context.Context, off, length int64) error {
	if length > 0 && d.enabled.Load() {
		if block := uint64(d.offset+off) >> d.blkShift; d.bad.written(block) {
			d.faults.Add(FaultWriteError)
			return fmt.Errorf("%w %d", ErrBadBlock, block)
		}
	}
	return d.dev.Trim(d.offset+off, length)
}

// Zero is judged as a write, piece by piece: dm-dust takes no write-zeroes
// bios, so the kernel zeroes a dust device with ordinary writes of zero
// pages, which dm splits at the block size as any write.
func (d *dust) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	return d.written(off, length, func(o, n int64) error { return d.dev.Zero(d.offset+o, n, flags) })
}

// Place takes the sector the table starts the target at, which decides
// the block a client's FLUSH is judged by.
func (d *dust) Place(begin uint64) { d.begin = begin }

// FlushRequest judges a client's FLUSH as dm-dust judges its empty flush
// bio: dm builds that bio at sector 0 of the mapped device, dust_map
// remaps it as any bio (offset + sector - begin, in 64 bits) and, being a
// write, looks its block up once enabled. So a target at the table's
// start judges every FLUSH by the first block of its data area: listed
// with writes still to fail, the FLUSH fails (one count used); listed
// without, the FLUSH takes it off the list. A target further in the table
// judges it by the device block begin sectors before its offset, if there
// is one (otherwise the sector wraps to a block no message can list).
func (d *dust) FlushRequest(context.Context) error {
	if !d.enabled.Load() {
		return nil
	}
	block := (uint64(d.offset)/SectorSize - d.begin) >> (d.blkShift - 9)
	if d.bad.written(block) {
		d.faults.Add(FaultWriteError)
		return fmt.Errorf("%w %d", ErrBadBlock, block)
	}
	return nil
}

func (d *dust) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	return d.dev.Extents(d.offset+off, length, emit)
}

// written applies a write of [off, off+n) to the bad-block list, piece
// by piece as dm judges it (see judged), and does it with do: on the
// whole range, or, when some pieces' writes fail, on the runs of pieces
// between them; then it answers ErrBadBlock.
func (d *dust) written(off, n int64, do func(off, n int64) error) error {
	if n <= 0 || !d.enabled.Load() {
		return do(off, n)
	}
	if _, bad := d.bad.anyIn(d.judged(off, n)); !bad {
		return do(off, n)
	}
	end, run := off+n, off // run: the start of the pieces to write yet
	_, last := d.judged(off, n)
	var failed []uint64
	for p := off; p < end; {
		next, block := d.nextPiece(p, end)
		if p > off {
			// Pieces after the first are judged by consecutive blocks:
			// go straight to the next listed one (a zeroing of a whole
			// disk must not walk its blocks one by one).
			b, listed := d.bad.anyIn(block, last)
			if !listed {
				break
			}
			if b > block {
				p = int64(b-uint64(d.offset)>>d.blkShift) << d.blkShift
				continue
			}
		}
		if d.bad.written(block) {
			failed = append(failed, block)
			if p > run {
				if err := do(run, p-run); err != nil {
					return err
				}
			}
			run = next
		}
		p = next
	}
	if run < end {
		if err := do(run, end-run); err != nil {
			return err
		}
	}
	if len(failed) == 0 {
		return nil
	}
	d.faults.Add(FaultWriteError)
	return fmt.Errorf("%w %d", ErrBadBlock, failed[0])
}
