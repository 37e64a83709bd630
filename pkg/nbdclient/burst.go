package nbdclient

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"

	"github.com/gdm-project/gdm/pkg/completion"
)

// Bursts of completions (package completion): the reader completes the
// asynchronous calls whose replies one read of the socket brought, one
// after another. Before it completes a call whose context carries a
// Batcher it holds that Batcher (once a burst), and it releases every
// Batcher it holds before it next reads the socket, which may wait: so a
// server that started the calls can write their replies together, and
// never waits on this reader for them.

// burstReader is the reader's buffered reader: r's buffered bytes, then
// the socket, each read of which first releases what the reader holds.
func (c *conn) burstReader(r *bufio.Reader) *bufio.Reader {
	var src io.Reader = socketReader{c}
	if n := r.Buffered(); n > 0 {
		rest, _ := r.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), src)
	}
	return bufio.NewReaderSize(src, r.Size())
}

// socketReader reads the connection's socket for its buffered reader.
type socketReader struct{ c *conn }

func (s socketReader) Read(p []byte) (int, error) {
	s.c.releaseHeld()
	return s.c.nc.Read(p)
}

// hold holds ctx's Batcher, if it has one, for the rest of this burst.
// Called by the reader, before the call's done.
func (c *conn) hold(ctx context.Context) {
	b := completion.From(ctx)
	if b == nil || slices.Contains(c.held, b) {
		return
	}
	b.Hold()
	c.held = append(c.held, b)
}

// releaseHeld releases what the reader holds. Called by the reader.
func (c *conn) releaseHeld() {
	for _, b := range c.held {
		b.Release()
	}
	clear(c.held)
	c.held = c.held[:0]
}
