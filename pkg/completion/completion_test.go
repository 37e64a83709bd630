package completion

import (
	"context"
	"testing"
)

type counter struct{ holds, releases int }

func (c *counter) Hold()    { c.holds++ }
func (c *counter) Release() { c.releases++ }

// TestWithFrom: a context carries its Batcher; one without carries none.
func TestWithFrom(t *testing.T) {
	if From(context.Background()) != nil {
		t.Fatal("a bare context carries a Batcher")
	}
	b := &counter{}
	ctx, cancel := context.WithCancel(With(context.Background(), b))
	defer cancel()
	if From(ctx) != b {
		t.Fatal("the Batcher is not found in a context derived from With's")
	}
}
