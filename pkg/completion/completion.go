// Package completion lets whoever completes asynchronous requests in
// bursts tell whoever started them when a burst is over, so that the
// replies of a burst go out together.
//
// The case it is for: gdm's NBD server starts requests on a remote leg
// (nbdserver's async.go), and the leg's reply reader (nbdclient) completes
// them one after another from one read of the leg's socket. Each
// completion used to write its reply to the NBD client at once: a write
// system call per reply, where the replies of one burst could go out in
// one writev. A server puts a Batcher in the context it starts requests
// with (With); the reader, before it completes a request whose context
// has one, calls Hold (once a burst), and Release when it has no more
// replies in hand, before it waits for the socket. Between the two, the
// server may leave the replies queued. A completion that comes any other
// way (a retry, a failure, a local export) has no Hold around it, and the
// server writes its reply at once, as before.
package completion

import "context"

// Batcher is what a request's starter gives the completer.
type Batcher interface {
	// Hold says that completions of the batcher's requests follow in a
	// burst, and that Release will come after them.
	Hold()
	// Release says that a burst that Hold began is over: the replies it
	// left queued are to go out now.
	Release()
}

type key struct{}

// With returns ctx carrying b.
func With(ctx context.Context, b Batcher) context.Context {
	return context.WithValue(ctx, key{}, b)
}

// From returns the Batcher ctx carries, or nil.
func From(ctx context.Context) Batcher {
	b, _ := ctx.Value(key{}).(Batcher)
	return b
}
