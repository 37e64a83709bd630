// Package aio is Linux's native asynchronous I/O (io_setup, io_submit,
// io_getevents) for descriptors opened with O_DIRECT, with completions
// signalled on an eventfd that Go's network poller watches.
//
// Why: a pread or pwrite on an O_DIRECT descriptor blocks its goroutine,
// and Go lets a goroutine blocked in a system call keep its P until the
// runtime's monitor takes it back. On a small machine few such calls then
// run at once (bench/blockingcalls), and a disk that answers in tens of
// microseconds is kept at a queue depth near one, whatever the client
// asks. With io_submit a request is handed to the kernel without
// blocking, many are in flight at once, and one goroutine reaps them all.
//
// Not used for buffered descriptors: there io_submit does the I/O before
// it returns, which gains nothing.
package aio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrShort is a request the kernel completed with fewer bytes than asked
// (the end of the device).
var ErrShort = errors.New("aio: short transfer")

// Linux's <linux/aio_abi.h>.
const (
	cmdPread    = 0
	cmdPwrite   = 1
	cmdPreadv   = 7
	cmdPwritev  = 8
	flagResfd   = 1 << 0
	iocbSize    = 64
	ioEventSize = 32
)

// iocb is struct iocb (little-endian layout: aio_key, then aio_rw_flags).
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   uint32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

var (
	_ [iocbSize - unsafe.Sizeof(iocb{})]byte
	_ [unsafe.Sizeof(iocb{}) - iocbSize]byte
	_ [ioEventSize - unsafe.Sizeof(ioEvent{})]byte
)

// Done gets a request's result: nil, ErrShort, or the errno.
type Done func(err error)

// slot is one request in flight: its iocb (the kernel copies it at
// submission, but keeping it here costs nothing), the buffer it reads
// into or writes from, or the iovecs that point at its buffers (kept
// reachable until the kernel is done with them), how many bytes it asks
// for, and whom to tell.
type slot struct {
	cb   iocb
	buf  []byte
	iov  []unix.Iovec
	want int
	done Done
}

// Context is one AIO context with a bounded number of requests in flight.
type Context struct {
	id    uintptr // aio_context_t
	event *os.File
	efd   int

	mu    sync.Mutex // guards free and slots' buf and done
	free  []int
	slots []slot

	// Counts of submissions, for Stats.
	submitted, noSlot, refused atomic.Uint64
}

// Stats is what a context did: requests handed to the kernel, requests
// not taken because every slot was in flight (NoSlot) or because the
// kernel refused them (Refused), both then done by their callers with
// blocking calls, and the requests in flight now.
type Stats struct {
	Submitted, NoSlot, Refused uint64
	InFlight                   int
}

// Stats reports the context's counts.
func (c *Context) Stats() Stats {
	c.mu.Lock()
	inFlight := len(c.slots) - len(c.free)
	c.mu.Unlock()
	return Stats{Submitted: c.submitted.Load(), NoSlot: c.noSlot.Load(), Refused: c.refused.Load(), InFlight: inFlight}
}

// New makes a context for up to n requests in flight and starts its
// reaper. It fails where the kernel has no AIO or the system's aio-max-nr
// is used up.
func New(n int) (*Context, error) {
	var id uintptr
	if _, _, errno := unix.Syscall(unix.SYS_IO_SETUP, uintptr(n), uintptr(unsafe.Pointer(&id)), 0); errno != 0 {
		return nil, fmt.Errorf("aio: io_setup: %w", errno)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, id, 0, 0)
		return nil, fmt.Errorf("aio: eventfd: %w", err)
	}
	c := &Context{id: id, event: os.NewFile(uintptr(efd), "aio-eventfd"), efd: efd, slots: make([]slot, n), free: make([]int, n)}
	for i := range c.free {
		c.free[i] = n - 1 - i
	}
	go c.reap()
	return c, nil
}

// Submit starts a read into p (write false) or a write of p (write true)
// on fd at off, and reports whether it did:
// false, having done nothing, when every slot is in use or the kernel
// refused the submission (the caller then does the I/O itself). p must
// meet fd's O_DIRECT alignment and stay untouched until done is called,
// once, from the reaper goroutine; done must not block.
func (c *Context) Submit(write bool, fd int, p []byte, off int64, done Done) bool {
	if len(p) == 0 {
		return false
	}
	op := uint16(cmdPread)
	if write {
		op = cmdPwrite
	}
	return c.submit(slot{buf: p, want: len(p), done: done,
		cb: iocb{opcode: op, fildes: uint32(fd), buf: uint64(uintptr(unsafe.Pointer(&p[0]))), nbytes: uint64(len(p)), offset: off}})
}

// SubmitV is Submit for a vector of buffers (preadv, pwritev), filled or
// written in order from off: a striped target's pieces on one leg, which
// lie apart in the request's memory but one after another on the leg.
// Each buffer must meet fd's O_DIRECT alignment; iov and its buffers stay
// untouched until done is called.
func (c *Context) SubmitV(write bool, fd int, iov []unix.Iovec, off int64, done Done) bool {
	want := 0
	for _, v := range iov {
		want += int(v.Len)
	}
	if want == 0 {
		return false
	}
	op := uint16(cmdPreadv)
	if write {
		op = cmdPwritev
	}
	return c.submit(slot{iov: iov, want: want, done: done,
		cb: iocb{opcode: op, fildes: uint32(fd), buf: uint64(uintptr(unsafe.Pointer(&iov[0]))), nbytes: uint64(len(iov)), offset: off}})
}

// submit takes a free slot for s and hands its iocb to the kernel.
func (c *Context) submit(s slot) bool {
	c.mu.Lock()
	if len(c.free) == 0 {
		c.mu.Unlock()
		c.noSlot.Add(1)
		return false
	}
	i := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	s.cb.data, s.cb.flags, s.cb.resfd = uint64(i), flagResfd, uint32(c.efd)
	c.slots[i] = s
	cbp := &c.slots[i].cb
	c.mu.Unlock()
	for {
		n, _, errno := unix.Syscall(unix.SYS_IO_SUBMIT, c.id, 1, uintptr(unsafe.Pointer(&cbp)))
		if errno == unix.EINTR {
			continue
		}
		if errno == 0 && n == 1 {
			c.submitted.Add(1)
			return true
		}
		c.release(i)
		c.refused.Add(1)
		return false
	}
}

// release frees slot i and returns how many bytes it asked for and whom
// to tell.
func (c *Context) release(i int) (int, Done) {
	c.mu.Lock()
	s := &c.slots[i]
	want, done := s.want, s.done
	*s = slot{}
	c.free = append(c.free, i)
	c.mu.Unlock()
	return want, done
}

// reap waits on the eventfd in the network poller and, each time it
// counts completions, collects them without waiting (io_getevents with
// a zero timeout) and calls their done.
func (c *Context) reap() {
	var count [8]byte
	events := make([]ioEvent, 64)
	zero := unix.Timespec{}
	for {
		if _, err := c.event.Read(count[:]); err != nil {
			return // closed: never, for the process's context
		}
		for {
			n, _, errno := unix.Syscall6(unix.SYS_IO_GETEVENTS, c.id, 0, uintptr(len(events)),
				uintptr(unsafe.Pointer(&events[0])), uintptr(unsafe.Pointer(&zero)), 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 || n == 0 {
				break
			}
			for _, ev := range events[:n] {
				want, done := c.release(int(ev.data))
				done(result(ev.res, want))
			}
		}
	}
}

// result is a completion's error: a negative res is an errno, a short
// count ErrShort.
func result(res int64, want int) error {
	switch {
	case res < 0:
		return syscall.Errno(-res)
	case res < int64(want):
		return ErrShort
	}
	return nil
}

// sharedSlots bounds the requests in flight through Shared, and
// minSharedSlots is the least it settles for.
const (
	sharedSlots    = 1024
	minSharedSlots = 64
)

// Shared is the process's context, made on first use; nil where the
// kernel refused one (then every caller does its I/O itself).
var Shared = sync.OnceValue(func() *Context {
	c, _ := newShared(New)
	shared.Store(c)
	return c
})

// newShared makes the shared context with setup: sharedSlots, or, where
// the kernel refuses that many (io_setup's EAGAIN: the system's
// fs.aio-max-nr used up by other processes, a database's say), half as
// many, down to minSharedSlots. A smaller context still keeps many
// requests in flight; none at all would put every one back in a
// blocking call.
func newShared(setup func(n int) (*Context, error)) (*Context, error) {
	var err error
	for n := sharedSlots; n >= minSharedSlots; n /= 2 {
		var c *Context
		if c, err = setup(n); err == nil {
			return c, nil
		}
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	return nil, err
}

// shared is Shared's context once made.
var shared atomic.Pointer[Context]

// SharedStats is the shared context's Stats, zero if it was never made
// (no block device read with O_DIRECT yet): asking does not make it.
func SharedStats() Stats {
	if c := shared.Load(); c != nil {
		return c.Stats()
	}
	return Stats{}
}
