package nbdtest

import (
	"testing"
	"time"
)

// Async is the result of an asynchronous request (a done func's), for the
// tests of nbdclient's asynchronous calls and of what is built on them.
type Async chan error

// NewAsync returns a channel for one result at a time and the done func
// that sends it.
func NewAsync() (Async, func(error)) {
	ch := make(Async, 1)
	return ch, func(err error) { ch <- err }
}

// Wait returns the next result, failing the test if none comes within
// 20 s: a request that never completes is the bug these tests look for.
func (a Async) Wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-a:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("an asynchronous request never completed")
		return nil
	}
}

// Never is a done func for a request that must be refused: called, it
// fails the test.
func Never(t testing.TB) func(error) {
	return func(error) { t.Error("done called for a refused request") }
}
