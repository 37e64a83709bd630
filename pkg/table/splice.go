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
	from := off
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
	return err
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
