package nbdserver

import (
	"io"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spinWindow is how long a TCP connection's reader keeps retrying an empty
// socket before it parks on the netpoller.
//
// Why: a fast server drains the socket, answers, and reads again before the
// client has sent the next request, so its reader parks and is woken over
// and over. On a UNIX socket that is cheap; on TCP each park and wake-up is
// an OS thread sleeping and being woken, a large part of the CPU a fast
// loopback client costs, while the next request is usually only
// microseconds away.
//
// Spinning pays only where a CPU would otherwise idle, so it is hedged
// three ways: TCP only (on UNIX sockets, where waking is cheap, it cost
// throughput), only while the reader serves its batches itself (cheap
// requests, see conn.readerServes) and the tuner finds spinning pays
// (knobSpin), and only while no more connections are in transmission than
// half the CPUs Go may use (as the Go scheduler limits its own spinning
// threads): a spinning reader takes a CPU that another connection's reader
// may need.
const spinWindow = 20 * time.Microsecond

// maxSpinBackoff bounds how many waits a reader parks at once without
// spinning after a spin found nothing: an idle or slow client costs at most
// one window per this many waits.
const maxSpinBackoff = 64

// spinReader reads a TCP connection, retrying for up to spinWindow when the
// socket is empty and spinning pays (see spinWindow), before it parks. Only
// the goroutine holding the reading turn uses it.
type spinReader struct {
	// Set once by newSpinReader (window and onSpin by tests, before use);
	// the other fields belong to the goroutine holding the reading turn.
	raw syscall.RawConn
	// busy counts the server's connections in transmission; spinning is
	// for when it is at most limit (half of GOMAXPROCS when the connection
	// began, at least 1).
	busy   *atomic.Int32
	limit  int32
	stats  *Stats
	window time.Duration // spinWindow; tests lengthen it
	// readerServes is set for each reading turn: spin only while requests
	// are cheap (the reader serves its batch itself).
	readerServes bool
	// skip counts waits left to park at once; backoff is the next skip
	// after a failed spin, doubling up to maxSpinBackoff.
	skip, backoff int
	// onSpin, when a test sets it, is called as a wait begins to spin on
	// an empty socket: the slow path, where the reader is about to retry
	// for up to window anyway.
	onSpin func()

	// One Read's argument, state and results, for readOnce, which is
	// bound once (readFn): a closure per Read captured them on the heap,
	// four allocations a read (two a request, in 4 KiB requests over TCP).
	p        []byte
	n        int
	rerr     error
	spin     bool
	deadline time.Time
	readFn   func(fd uintptr) bool
}

// spinning reports whether this wait may spin, and counts it against the
// backoff.
func (s *spinReader) spinning() bool {
	if !s.readerServes {
		return false
	}
	if s.skip > 0 {
		s.skip--
		return false
	}
	return s.busy.Load() <= s.limit
}

func newSpinReader(raw syscall.RawConn, busy *atomic.Int32, stats *Stats) *spinReader {
	return &spinReader{raw: raw, busy: busy, stats: stats, limit: int32(max(1, runtime.GOMAXPROCS(0)/2)), window: spinWindow}
}

func (s *spinReader) Read(p []byte) (int, error) {
	if s.readFn == nil {
		s.readFn = s.readOnce
	}
	s.p, s.n, s.rerr, s.spin, s.deadline = p, 0, nil, s.spinning(), time.Time{}
	err := s.raw.Read(s.readFn)
	n, rerr := s.n, s.rerr
	s.p, s.rerr = nil, nil
	if err != nil {
		return n, err
	}
	return n, rerr
}

// readOnce is one try of Read on fd: it reports false to park until the
// socket is readable, after spinning on it while s.spin allows.
func (s *spinReader) readOnce(fd uintptr) bool {
	for {
		m, err := unix.Read(int(fd), s.p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if !s.spin {
				return false // park until readable
			}
			now := time.Now()
			if s.deadline.IsZero() {
				s.deadline = now.Add(s.window)
				if s.onSpin != nil {
					s.onSpin()
				}
			} else if now.After(s.deadline) {
				// Nothing came in the window: park, and park at
				// once for the next few waits too.
				s.spin = false
				s.backoff = min(max(2*s.backoff, 1), maxSpinBackoff)
				s.skip = s.backoff
				s.stats.SpinsParked.Add(1)
				return false
			}
			continue
		case err != nil:
			// read(2) returns -1 with its error: never hand that on
			// as a count (a reset connection crashed the daemon so).
			s.rerr = err
			m = 0
		case m == 0:
			s.rerr = io.EOF
		case s.spin && !s.deadline.IsZero():
			s.backoff = 0 // the spin paid off
			s.stats.SpinsFound.Add(1)
		}
		s.n = m
		return true
	}
}
