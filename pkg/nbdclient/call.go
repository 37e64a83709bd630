package nbdclient

import (
	"context"
	"sync"
	"time"
)

// call is one request in flight. The reader goroutine owns the progress
// fields; res is written by whoever finishes the call (the reader or a
// kill, under conn.mu's ownership rule), before the token on done, and
// read by the waiter after. Calls are reused (callPool) once their waiter
// has seen them complete and the writer is done with them.
type call struct {
	req     request
	payload []byte // a write's data
	buf     []byte // a read's destination
	pipe    int    // a spliced read's destination (splice.go); -1: none
	// spliced says src is a spliced write's payload (splicewrite.go): the
	// read end of a pipe that holds all of it but payload, its tail.
	spliced  bool
	src      int
	deadline time.Time // when the request timeout ends it; zero: never
	// flushMark is the connection's writesDone when a flush was queued:
	// the writes it covers once it succeeds (lostwrites.go).
	flushMark uint64
	done      chan struct{} // capacity 1: one token, when res is set
	res       result

	// progress, readLoop's only
	covered   int64
	spans     []span  // the ranges of a read that chunks covered (claim)
	spanBuf   [2]span // spans' first array
	firstE    error
	extents   []Extent
	spliceErr error // a spliced read's data could not go into the pipe

	// bufMu is held by the reader while it fills buf, and by the waiter to
	// mark the call abandoned, so that buf is never written after the
	// waiter returned it to its owner.
	bufMu     sync.Mutex
	abandoned bool
	// replied: the reply is in, and the call held back until the writer
	// is done with its payload (early.go); set under conn.mu, read by
	// the reader.
	replied bool

	// async, when set, makes this an asynchronous call (async.go): it
	// has no waiter; whoever finishes it calls async with the result
	// instead of sending the token on done. client and ctx are for its
	// one retry. Set before the call is queued, then only read.
	async  func(error)
	client *Client
	ctx    context.Context
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// newCall takes a zeroed call from the pool.
func newCall() *call {
	cl := callPool.Get().(*call)
	*cl = call{done: cl.done}
	return cl
}

type result struct {
	err     error
	extents []Extent
}

// Extent is one run of a block status reply (flags: 1 hole, 2 zero).
type Extent struct {
	Length int64
	Flags  uint32
}
