package daemon

import (
	"context"
	"fmt"
)

// verbLock serializes one device's verbs, as a sync.Mutex would, except
// that a verb with a deadline of its own (suspend and resume take
// --timeout) stops waiting when it ends: a verb stuck behind another on
// the same device (a hung backend open, a flush to a dead host) answers
// within its --timeout instead of waiting for the first.
type verbLock chan struct{}

func newVerbLock() verbLock { return make(verbLock, 1) }

func (l verbLock) Lock() { l <- struct{}{} }

func (l verbLock) Unlock() { <-l }

// lockContext is Lock, or ctx's error if it ends first.
func (l verbLock) lockContext(ctx context.Context, name string) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("another verb on %s is still running: %w", name, ctx.Err())
	}
}
