package targets

import "context"

// The delay target's I/O: each request waits its class's delay in the
// caller's goroutine, then goes to the class's device as linear's does.
// Classes are dm's: a bio that is not a write is a read; discards and
// write-zeroes are writes (dm-delay maps them by data direction); an empty
// flush is the flush class.

func (t *delayTarget) ReadAt(ctx context.Context, p []byte, off int64) error {
	c, err := t.hold(ctx, delayRead)
	if err != nil {
		return err
	}
	return c.dev.ReadAt(p, c.offset+off)
}

// SpliceTo waits as a read, then splices from the read device. If the pipe
// is full the caller reads the range with ReadAt, which waits again: a
// rare second delay (a 1 MiB read that starts inside a page) rather than
// data read before the wait.
func (t *delayTarget) SpliceTo(ctx context.Context, pipe int, off, n int64) error {
	c, err := t.hold(ctx, delayRead)
	if err != nil {
		return err
	}
	return c.dev.SpliceTo(pipe, c.offset+off, n)
}

// WriteAt with FUA syncs the write device after the write.
func (t *delayTarget) WriteAt(ctx context.Context, p []byte, off int64, flags WriteFlags) error {
	c, err := t.hold(ctx, delayWrite)
	if err != nil {
		return err
	}
	err = c.dev.WriteAt(p, c.offset+off)
	if err == nil && flags&FUA != 0 {
		err = c.dev.Sync()
	}
	return err
}

func (t *delayTarget) Trim(ctx context.Context, off, length int64) error {
	c, err := t.hold(ctx, delayWrite)
	if err != nil {
		return err
	}
	return c.dev.Trim(c.offset+off, length)
}

func (t *delayTarget) Zero(ctx context.Context, off, length int64, flags ZeroFlags) error {
	c, err := t.hold(ctx, delayWrite)
	if err != nil {
		return err
	}
	return c.dev.Zero(c.offset+off, length, flags)
}

// Extents reports the read device's allocation at once: block status is
// no bio in dm (nothing a dm target maps or delays), and holding it would
// show in the INFO counts as a read that dm never has.
func (t *delayTarget) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	c := &t.classes[delayRead]
	return c.dev.Extents(c.offset+off, length, emit)
}

// Flush waits the flush class's delay. The table has already synced every
// device of its DevSet, the flush device among them, so the wait is all
// that is left of dm's delayed empty flush: the FLUSH is answered no
// earlier than the delay, and no later write is made durable by it.
func (t *delayTarget) Flush(ctx context.Context) error {
	_, err := t.hold(ctx, delayFlush)
	return err
}
