package daemon

import (
	"net"
	"net/http"
	"sync"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
)

// What a control client can hold. The socket is root's only (0600), but a
// stuck script or a runaway loop is enough to exhaust a daemon that does
// not bound them: each connection costs a goroutine and its buffers, and a
// table upload may claim up to maxTableBytes before its first byte comes.

// maxControlConns bounds the control connections open at once. Past it
// the listener closes an idle kept-alive connection to make room (a
// client library that never closes its idle connections must not lock
// the others out), and with none idle stops accepting: further clients
// wait in the socket's backlog until one closes.
const maxControlConns = 64

// bigTableBytes is where a table upload starts to count against
// maxBigUploads: tables below it (nearly all) never wait.
const bigTableBytes = 1 << 20

// maxBigUploads bounds the big table uploads read and built at once, so
// that the memory they claim is at most maxBigUploads × maxTableBytes
// (plus what their tables build into), however many clients send them.
const maxBigUploads = 4

// bigAnswerTargets is where an answer that copies its table whole (the
// table as JSON, the status, whose lines are made before the first is
// written) starts to count against maxBigAnswers: about bigTableBytes of
// text. The table as plain text is written from the table as it goes,
// and never waits.
const bigAnswerTargets = 1 << 14

// maxBigAnswers bounds the big answers made at once: each holds a copy of
// its table's text or status (tens of MB for a million targets) for as
// long as its client takes to read it, up to streamTimeout, and each of
// maxControlConns connections could ask for one.
const maxBigAnswers = 4

// maxVerbBody bounds the JSON body of a request that carries no table
// (rename, message, attach): a few hundred bytes are enough for any of
// them, and such a request takes no upload slot, so that without its own
// bound each of maxControlConns connections could make the daemon buffer
// maxJSONTable (4 GiB in all).
const maxVerbBody = 1 << 20

// maxJSONTable bounds a table sent inside a JSON body (create and load
// without the plain-text media type); a body of bigTableBytes or more
// takes an upload slot first.
const maxJSONTable = 64 << 20

// limitListener is a net.Listener that keeps at most cap(slots)
// connections open: Accept takes a slot, or reclaims one from an idle
// connection (as the HTTP server reports them to track), or waits for
// one; a connection's first Close gives its slot back.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{} // closed by Close: a waiting Accept returns
	once  sync.Once

	mu      sync.Mutex
	idle    map[net.Conn]struct{} // kept-alive connections between requests
	idleNow chan struct{}         // a token when a connection turns idle
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{}),
		idle: map[net.Conn]struct{}{}, idleNow: make(chan struct{}, 1)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for taken := false; !taken; {
		select {
		case l.slots <- struct{}{}:
			taken = true
		default: // full: free a slot from an idle connection, or wait
			l.closeOneIdle()
			select {
			case l.slots <- struct{}{}:
				taken = true
			case <-l.idleNow:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// track is the HTTP server's ConnState hook: it keeps the set of idle
// connections that Accept may reclaim.
func (l *limitListener) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.idle[c] = struct{}{}
		select {
		case l.idleNow <- struct{}{}:
		default:
		}
	} else {
		delete(l.idle, c)
	}
}

// closeOneIdle closes an idle connection, if there is one: what the
// server's IdleTimeout would do to it later, done now that its slot is
// wanted.
func (l *limitListener) closeOneIdle() {
	l.mu.Lock()
	var victim net.Conn
	for c := range l.idle {
		victim = c
		delete(l.idle, c)
		break
	}
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// uploadSlot takes one of the big-upload slots for a request whose body
// may be a big table (a Content-Length of bigTableBytes or more, or none
// given), waiting while all are taken. It returns the release, or answers
// 503 and returns false if the client went away first. Small bodies need
// no slot.
func (d *daemon) uploadSlot(w http.ResponseWriter, r *http.Request) (func(), bool) {
	if r.ContentLength >= 0 && r.ContentLength < bigTableBytes {
		return func() {}, true
	}
	return takeSlot(w, r, d.uploads, "busy: too many big table uploads at once")
}

// answerSlot takes one of the big-answer slots for an answer copying the
// table in m's slot, if that table is big, waiting while all are taken.
// It returns the release, or answers 503 and returns false if the client
// went away first. The table is looked at, not held, while it waits: a
// table swapped meanwhile is answered as it is then, slot or not.
func (d *daemon) answerSlot(w http.ResponseWriter, r *http.Request, m *managed, slot table.Slot) (func(), bool) {
	n := 0
	m.dev.View(slot, func(t *table.Table) error { n = t.Len(); return nil })
	if n < bigAnswerTargets {
		return func() {}, true
	}
	return takeSlot(w, r, d.answers, "busy: too many answers of big tables at once")
}

// takeSlot waits for a slot of sem and returns its release, or answers
// 503 with busy and returns false if the client went away first.
func takeSlot(w http.ResponseWriter, r *http.Request, sem chan struct{}, busy string) (func(), bool) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-r.Context().Done():
		writeJSON(w, http.StatusServiceUnavailable, controlapi.Error{Error: busy})
		return nil, false
	}
}
