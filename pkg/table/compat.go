package table

import (
	"context"

	"github.com/gdm-project/gdm/pkg/targets"
)

// The Table I/O methods without a context, kept until their callers
// (cmd/gdm, the benchmarks) move to the ...Context ones. Each runs with
// context.Background(): nothing can cancel it.

// ReadAt reads len(p) bytes at off.
//
// Deprecated: use ReadAtContext.
func (t *Table) ReadAt(p []byte, off int64) error {
	return t.ReadAtContext(context.Background(), p, off)
}

// WriteAt writes p at off.
//
// Deprecated: use WriteAtContext.
func (t *Table) WriteAt(p []byte, off int64) error {
	return t.WriteAtContext(context.Background(), p, off, 0)
}

// SpliceTo moves [off, off+n) into pipe.
//
// Deprecated: use SpliceToContext.
func (t *Table) SpliceTo(pipe int, off, n int64) error {
	return t.SpliceToContext(context.Background(), pipe, off, n)
}

// Trim discards [off, off+length).
//
// Deprecated: use TrimContext.
func (t *Table) Trim(off, length int64) error {
	return t.TrimContext(context.Background(), off, length)
}

// Zero makes [off, off+length) read as zeros.
//
// Deprecated: use ZeroContext.
func (t *Table) Zero(off, length int64, flags targets.ZeroFlags) error {
	return t.ZeroContext(context.Background(), off, length, flags)
}

// Flush makes every completed write durable.
//
// Deprecated: use FlushContext.
func (t *Table) Flush() error { return t.FlushContext(context.Background()) }

// Extents reports allocation of [off, off+length).
//
// Deprecated: use ExtentsContext.
func (t *Table) Extents(off, length int64, emit func(targets.Extent) bool) error {
	return t.ExtentsContext(context.Background(), off, length, emit)
}
