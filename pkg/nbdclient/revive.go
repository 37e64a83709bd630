package nbdclient

import (
	"context"
	"time"
)

// revive redials, in the background, a client whose every connection is
// down, waiting out the backoff between failed dials, until a connection
// is up again or the client is closed. Requests redial too, but a leg
// that no request comes to (a striped leg while the I/O goes elsewhere, a
// device at rest) would otherwise stay down after its host came back: its
// status would say D, and the event that it came back would never come.
// One at a time; Close ends it (its dial and its wait watch cl.life).
// After a hang-up on a server that answered ESHUTDOWN it first waits
// the longest backoff: such a server waits for its clients to leave
// before it exits, and a revive knocking at once would keep it waiting
// (a request still redials at once, as before: it has I/O to do).
func (cl *Client) revive() {
	if cl.reviving.CompareAndSwap(false, true) {
		go cl.reviveLoop()
	}
}

// reviveLoop is revive's goroutine. Before it goes it looks once more,
// once it no longer holds reviving: a connection that died in between
// found reviving set, and started none.
func (cl *Client) reviveLoop() {
	for {
		for cl.needsRevive() {
			cl.mu.Lock()
			next := cl.nextDial
			cl.mu.Unlock()
			cl.pace.Lock()
			wait := time.Until(later(next, cl.quietUntil))
			cl.pace.Unlock()
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-cl.life.Done():
					t.Stop()
				}
				continue
			}
			ctx, cancel := context.WithTimeout(cl.life, cl.reviveDialTimeout())
			cl.redial(ctx, 0) // a failure sets the backoff
			cancel()
		}
		cl.reviving.Store(false)
		if !cl.needsRevive() || !cl.reviving.CompareAndSwap(false, true) {
			return
		}
	}
}

// reviveDialTimeout bounds a revive's dial: the dial timeout, or the
// request timeout if shorter. Requests that find the revive dialling wait
// for it (the retries after a drop want its connection); bounded so, they
// fail at once during the backoff as before, and never wait longer for a
// host that swallows SYNs than a dial of their own would have taken.
func (cl *Client) reviveDialTimeout() time.Duration {
	if t := cl.opts.RequestTimeout; t > 0 && t < cl.opts.DialTimeout {
		return t
	}
	return cl.opts.DialTimeout
}

// connDied is the first half of what a connection's end tells the
// client: the pacing of the background redial (connGone is the second).
// A connection that died young (a server that hangs up right after the
// handshake: an export that breaks as soon as it is used, a proxy whose
// backend is gone) was a dial that succeeded for nothing; the revive
// would dial it again at once, and again, in a loop with no wait. So each
// young death doubles a backoff of the revive's own (quietUntil), and a
// connection that lived resets it. Requests still redial at once, as
// before: they have I/O to do.
//
// It runs in the connection's kill, before anyone can see the connection
// dead, so the revive that sees it dead waits out the pacing its death
// set. (It once ran in a goroutine after, and a revive quicker than that
// goroutine redialled at once: CI saw 6 dials in 761 ms where the
// backoff alone makes 1.55 s.) Hence only the leaf lock pace here.
func (cl *Client) connDied(lived time.Duration) {
	cl.pace.Lock()
	if lived < cl.opts.BackoffMax {
		cl.flapBackoff = min(max(cl.flapBackoff*2, cl.opts.BackoffMin), cl.opts.BackoffMax)
		cl.quietUntil = later(cl.quietUntil, time.Now().Add(cl.flapBackoff))
	} else {
		cl.flapBackoff = 0
	}
	cl.pace.Unlock()
}

// connGone is the second half: noteState, which starts the revive if no
// connection is up. It runs in the connection's kill once the connection
// is seen dead, never before: a noteState started in connDied could look
// before kill marked the connection dead, find it alive, and start no
// revive, and the connection's death would tell no one else (CI saw a
// flapping server dialled once in a minute). In a goroutine, as noteState
// takes the client's lock and kill may run under it.
func (cl *Client) connGone() { go cl.noteState() }

// needsRevive says whether the client is open, has its pool, and no
// connection of it is up.
func (cl *Client) needsRevive() bool {
	cl.mu.Lock()
	ready := !cl.closed && len(cl.conns) > 0
	cl.mu.Unlock()
	return ready && cl.life.Err() == nil && !cl.Connected()
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
