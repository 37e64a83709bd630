package table

import (
	"context"

	"github.com/gdm-project/gdm/pkg/targets"
)

// SpliceTo moves [off, off+n) into pipe without copying it through
// user space, target by target (see targets.Target.SpliceTo). After an
// error the pipe holds part of the range.
//
// A target's targets.ErrPipeFull means the read is not done: the caller
// reads the whole range again the ordinary way, which counts it. So the
// pieces are counted only once the outcome is known, and not at all
// after ErrPipeFull; counted as they went, the targets in front of the
// refusal would count every such read twice.
func (t *Table) SpliceTo(ctx context.Context, pipe int, off, n int64) error {
	if err := t.check(off, n, OpRead); err != nil {
		return err
	}
	from, end := off, off+n
	var err error
	for n > 0 && err == nil {
		i, tOff, m := t.locate(off, n)
		err = t.targets[i].SpliceTo(ctx, pipe, tOff, m)
		off += m
		n -= m
	}
	if err == targets.ErrPipeFull {
		return err
	}
	t.countPieces(from, off, OpRead, err)
	if err != nil {
		t.readRest(ctx, off, end)
	}
	return err
}

// restBuf bounds the scratch buffer of readRest.
const restBuf = 1 << 20

// readRest reads [off, end), the part of a spliced read after the piece
// that failed, into a scratch buffer, for what the reads do to the
// targets alone: dm submits every piece of a read whichever fails, and
// each failed piece reaches its target (a striped leg turns D), as rw
// does. The caller discards the pipe after an error, so the data goes
// nowhere. Only a failed read pays for it.
func (t *Table) readRest(ctx context.Context, off, end int64) {
	if off >= end {
		return
	}
	buf := make([]byte, min(end-off, restBuf))
	for off < end {
		n := min(end-off, int64(len(buf)))
		t.rw(ctx, buf[:n], off, OpRead, 0) // its error is the request's no more
		off += n
	}
}

// countPieces counts op on each target's piece of [from, to), done; the
// last piece ended with err.
func (t *Table) countPieces(from, to int64, op Op, err error) {
	for from < to {
		i, _, m := t.locate(from, to-from)
		from += m
		var last error
		if from == to {
			last = err
		}
		t.stats.record(i, op, m, last)
	}
}
