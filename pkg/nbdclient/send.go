package nbdclient

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sending: callers queue requests, and whoever finds no writer running
// becomes the writer and writes everything queued, in cookie order, as one
// batch: its headers and payloads in one writev. Under load a batch holds
// every request that arrived while the previous one was being written, so
// many requests cost one system call; alone, a request is written at once
// by its own caller, with no handoff to another goroutine.

// leaderBatches bounds the batches a caller writes for others before it
// hands the writing to a goroutine and goes back to wait for its own
// reply.
const leaderBatches = 4

// inlineMax is the largest payload copied into the batch buffer on a
// connection that cannot writev (TLS): there every segment is a write of
// its own (a TLS record), and small payloads cost less copied than sent
// alone.
const inlineMax = 64 << 10

// canWritev says whether nc writes net.Buffers with one writev (a plain
// TCP or UNIX socket).
func canWritev(nc net.Conn) bool {
	_, ok := nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	return ok
}

// enqueue registers cl (its cookie, its deadline with the watchdog) and
// queues it for the writer. lead: no writer runs, the caller must start
// one.
func (c *conn) enqueue(cl *call) (lead bool, err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false, c.deadErr()
	}
	c.cookie++
	cl.req.cookie = c.cookie
	cl.flushMark = c.writesDone // what a flush sent from here on covers
	c.pending[cl.req.cookie] = cl
	if !cl.deadline.IsZero() {
		c.armLocked(cl.deadline)
	}
	c.queue = append(c.queue, cl)
	lead = !c.writing
	c.writing = true
	c.mu.Unlock()
	return lead, nil
}

// unqueue takes back a call the writer has not taken yet: it was never
// sent. It reports false when the call is gone from the queue (taken by
// the writer, or failed by a kill).
func (c *conn) unqueue(cl *call) bool {
	c.mu.Lock()
	i := slices.Index(c.queue, cl)
	if i < 0 {
		c.mu.Unlock()
		return false
	}
	c.queue = slices.Delete(c.queue, i, i+1)
	delete(c.pending, cl.req.cookie)
	c.mu.Unlock()
	<-c.slots
	return true
}

// writeLoop writes batches until the queue is empty or the connection
// dies. A caller writing for others (leader) hands off to a goroutine
// after leaderBatches, so that its own reply is not held up for long.
func (c *conn) writeLoop(leader bool) {
	// Let the goroutines that are ready to run queue their requests first:
	// a server hands a batch of its client's requests to several
	// goroutines at once, and they then go out in one write instead of
	// one each. It costs little when no one else is ready.
	runtime.Gosched()
	c.writeQueued(leader)
}

// writeQueued is writeLoop without the yield.
func (c *conn) writeQueued(leader bool) {
	c.wmu.Lock()
	mode := writeAll
	if leader {
		mode = writeAsLeader
	}
	c.writeBatches(mode)
}

// writeOnCaller is the writer an asynchronous call starts. A batch that
// carries at least callerWriteMin bytes of payload, and for which the
// socket has room so that writing it cannot block (roomFor), is written
// on the caller (a server's reader); anything else on a goroutine, which
// the caller does not wait for. Either way the caller never waits for a
// leg that reads slowly.
//
// Why both: small requests gain from the goroutine, as the caller goes
// on to start the requests it has read meanwhile and the goroutine's
// writev takes them along; written by the caller, each went out alone
// (4 KiB requests through a leg: 15-20% fewer, at about 25% more CPU in
// the two daemons). A large write's payload dwarfs its header, and the
// goroutine per write cost a wake-up of another thread: writing on the
// caller cut the extra CPU a leg costs on 1 MiB writes by about 15%
// (bash bench/remote.sh 2 3, two runs each, 2-core EPYC VM).
func (c *conn) writeOnCaller() {
	if !c.wmu.TryLock() { // a hang-up writing its DISC: no wait on the caller
		go c.writeQueued(false)
		return
	}
	c.writeBatches(writeOnCaller)
}

// callerWriteMin is the least payload a batch carries for writeOnCaller
// to write it on the caller: the smallest write that is spliced.
const callerWriteMin = 64 << 10

// payloadBytes is what batch's writes carry.
func payloadBytes(batch []*call) int {
	n := 0
	for _, cl := range batch {
		if cl.req.typ == cmdWrite {
			n += int(cl.req.length)
		}
	}
	return n
}

// writeMode is who writes the queue and when a goroutine takes over the
// rest (writeBatches). A mode, not a function: the functions that said it
// were two allocations on every asynchronous request.
type writeMode uint8

const (
	writeAll      writeMode = iota // write until the queue is empty
	writeAsLeader                  // a caller writing for others: hand off after leaderBatches (writeLoop)
	writeOnCaller                  // an asynchronous call's caller: see (*conn).writeOnCaller
)

// handOff says, before batch i (with c.mu held), whether a goroutine is
// to write the rest.
func (c *conn) handOff(mode writeMode, i int) bool {
	switch mode {
	case writeAsLeader:
		return i == leaderBatches
	case writeOnCaller:
		p := payloadBytes(c.queue)
		return i == leaderBatches || p < callerWriteMin || !c.roomFor(len(c.queue)*requestSize+p)
	}
	return false
}

// writeBatches writes the queued batches until the queue is empty or the
// connection dies, or until handOff says a goroutine is to write the
// rest. Called with wmu held; it unlocks it.
func (c *conn) writeBatches(mode writeMode) {
	defer c.wmu.Unlock()
	var prev []*call
	for i := 0; ; i++ {
		c.mu.Lock()
		if prev != nil {
			c.spare = prev[:0]
		}
		late := c.takeLateLocked() // all written by now: see there
		var batch []*call
		switch {
		case c.err != nil || len(c.queue) == 0:
			c.writing = false
		case c.handOff(mode, i):
			// writing stays true: the goroutine takes over (once this
			// one lets go of wmu). After a leader, it yields first as
			// writeLoop does.
			if mode == writeAsLeader {
				go c.writeLoop(false)
			} else {
				go c.writeQueued(false)
			}
		default:
			batch = c.queue
			c.queue, c.spare = c.spare, nil
		}
		c.mu.Unlock()
		c.completeLate(late)
		if batch == nil {
			return
		}
		if err := c.writeBatch(batch); err != nil {
			c.kill(err)
		}
		clear(batch)
		prev = batch
	}
}

// roomFor says whether the socket's send buffer has room for need bytes
// now, twice over (the kernel counts its own overhead too), so that
// writing them does not block. No: no descriptor (TLS), or not that much
// room. The buffer's size is asked each time: TCP resizes it, and
// anyone may set it.
func (c *conn) roomFor(need int) bool {
	if c.raw == nil {
		return false
	}
	room := false
	c.raw.Control(func(fd uintptr) {
		size, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil {
			return
		}
		q, err := unix.IoctlGetInt(int(fd), unix.TIOCOUTQ) // SIOCOUTQ
		room = err == nil && q+2*need <= size
	})
	return room
}

// writeBatch writes the headers and payloads of batch. Called with wmu
// held. A spliced write's payload goes from its pipe into the socket
// (splicewrite.go), after everything before it.
func (c *conn) writeBatch(batch []*call) error {
	need := len(batch) * requestSize
	if !c.vectored {
		for _, cl := range batch {
			if len(cl.payload) <= inlineMax {
				need += len(cl.payload)
			}
		}
	}
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, 0, need)
	}
	b, iov, run := c.wbuf[:0], c.iov[:0], 0 // b never grows past need: no copy moves it
	for _, cl := range batch {
		b = b[:len(b)+requestSize]
		cl.req.encode(b[len(b)-requestSize:])
		p := cl.payload
		switch {
		case cl.spliced:
			iov = append(iov, b[run:])
			run = len(b)
			if err := c.writeSegments(iov); err != nil {
				return err
			}
			iov = c.iov[:0]
			if err := c.spliceOut(cl.src, int64(int(cl.req.length)-len(p))); err != nil {
				return fmt.Errorf("nbdclient: send spliced payload: %w", err)
			}
			if len(p) > 0 {
				iov = append(iov, p) // its tail
			}
		case len(p) == 0:
		case !c.vectored && len(p) <= inlineMax:
			b = append(b, p...)
		default:
			iov = append(iov, b[run:], p)
			run = len(b)
		}
	}
	if run < len(b) {
		iov = append(iov, b[run:])
	}
	if err := c.writeSegments(iov); err != nil {
		return err
	}
	c.written.Store(batch[len(batch)-1].req.cookie)
	c.signal() // a reader may wait for it (awaitWritten)
	return nil
}

// writeSegments writes iov (backed by c.iov's array) with one writev, then
// drops the callers' payloads from that array. Called with wmu held.
func (c *conn) writeSegments(iov net.Buffers) error {
	if len(iov) == 0 {
		return nil
	}
	c.iov, c.iovOut = iov, iov
	var err error
	if c.raw != nil {
		err = c.writev() // says when it waits for the server (parked)
	} else {
		_, err = c.iovOut.WriteTo(c.nc) // consumes iovOut, not iov: a local's WriteTo would move it to the heap
	}
	clear(c.iov)
	if err != nil {
		return fmt.Errorf("nbdclient: send requests: %w", err)
	}
	return nil
}
