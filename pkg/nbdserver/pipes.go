package nbdserver

import (
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// spliceMin is the smallest read sent by splicing (SpliceReader). Below it
// the two copies of pread and writev are cheap, and batching replies into
// one writev matters more.
const spliceMin = 64 << 10

// pipeSize is the capacity asked for each pipe: the largest read that
// is spliced. 1 MiB is Linux's default pipe-max-size, which any user may
// ask for.
const pipeSize = 1 << 20

// maxIdlePipes bounds the pipes kept for reuse (two descriptors each).
const maxIdlePipes = 32

// pipe is a pipe(2) used to carry one read reply's data from the backing
// file to the socket.
type pipe struct {
	r, w int
	size int // capacity in bytes
}

// pipePool keeps empty pipes for reuse, and bounds the pipes open at once
// (in use or idle): each holds two descriptors and up to pipeSize of
// kernel memory, and a client that queues large reads and never reads the
// replies pins one per reply. Past the bound reads are copied instead (no
// pipe), so the descriptors clients can cost are at most one per
// connection plus two per pipe.
type pipePool struct {
	// Set once by Server.init, before the first connection.
	max     int            // bound on open pipes; <= 0: none
	refused *atomic.Uint64 // Stats.PipesRefused

	mu     sync.Mutex // guards idle, open, closed
	idle   []*pipe
	open   int
	closed bool
}

// get returns an empty pipe, or nil when none may or can be made (at the
// bound, or out of descriptors): the caller then reads the ordinary way.
func (pp *pipePool) get() *pipe {
	pp.mu.Lock()
	if n := len(pp.idle); n > 0 {
		p := pp.idle[n-1]
		pp.idle = pp.idle[:n-1]
		pp.mu.Unlock()
		return p
	}
	if pp.max > 0 && pp.open >= pp.max {
		pp.mu.Unlock()
		if pp.refused != nil {
			pp.refused.Add(1)
		}
		return nil
	}
	pp.open++
	pp.mu.Unlock()
	p := newPipe()
	if p == nil {
		pp.forget()
	}
	return p
}

// getFor returns an empty pipe with room for n bytes, or nil (see get;
// a pipe the kernel would not grow to pipeSize carries smaller reads
// only).
func (pp *pipePool) getFor(n int64) *pipe {
	p := pp.get()
	if p != nil && n > int64(p.size) {
		pp.put(p)
		return nil
	}
	return p
}

func newPipe() *pipe {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	p := &pipe{r: fds[0], w: fds[1]}
	// The size may be refused (a user over its pipe-buffer quota); the
	// pipe then keeps its default size and carries smaller reads only.
	unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize)
	size, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		p.close()
		return nil
	}
	p.size = size
	return p
}

// forget counts one pipe less open.
func (pp *pipePool) forget() {
	pp.mu.Lock()
	pp.open--
	pp.mu.Unlock()
}

// put keeps an empty pipe for reuse.
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	if !pp.closed && len(pp.idle) < maxIdlePipes {
		pp.idle = append(pp.idle, p)
		p = nil
	}
	pp.mu.Unlock()
	if p != nil {
		pp.discard(p)
	}
}

// putIfEmpty keeps a pipe that may hold data for reuse if it holds none
// (a splice the export declined before moving anything: a crypt target,
// a block device read past the page cache), else discards it.
func (pp *pipePool) putIfEmpty(p *pipe) {
	if n, err := unix.IoctlGetInt(p.r, unix.TIOCINQ); err == nil && n == 0 { // TIOCINQ is FIONREAD
		pp.put(p)
		return
	}
	pp.discard(p)
}

// discard closes a pipe that may hold data, instead of keeping it.
func (pp *pipePool) discard(p *pipe) {
	p.close()
	pp.forget()
}

// Open counts the pipes open, in use or idle.
func (pp *pipePool) Open() int {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.open
}

// close closes the idle pipes for good; pipes in use are closed when put
// back.
func (pp *pipePool) close() {
	pp.mu.Lock()
	pp.closed = true
	pp.mu.Unlock()
	pp.trim()
}

// trim closes the idle pipes.
func (pp *pipePool) trim() {
	pp.mu.Lock()
	idle := pp.idle
	pp.idle = nil
	pp.open -= len(idle)
	pp.mu.Unlock()
	for _, p := range idle {
		p.close()
	}
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// spliceSome moves up to n bytes from in to out with non-blocking
// splice(2) calls, until n are moved or one fails, and returns how many
// are left. unix.EAGAIN says one side is not ready (wait, then call
// again); an end of stream is io.ErrUnexpectedEOF.
func spliceSome(in, out, n int) (int, error) {
	for n > 0 {
		m, err := unix.Splice(in, nil, out, nil, n, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, io.ErrUnexpectedEOF
		}
		n -= int(m)
	}
	return 0, nil
}
