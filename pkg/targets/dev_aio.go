package targets

import (
	"errors"

	"github.com/gdm-project/gdm/pkg/aio"
)

// A block device read and written with O_DIRECT takes whole-block reads
// and writes asynchronously (AsyncTarget), through Linux AIO
// (pkg/aio): the server hands a request to the kernel and reads on, and
// many are in flight on the device at once. Served with pread and
// pwrite, one goroutine each, few were: Go keeps a P per goroutine
// blocked in a system call, and on a small machine that held a fast disk
// at a queue depth near one (see pkg/aio and bench/blockdev.sh). A
// request AIO cannot take (all slots in flight, a range that is not whole
// blocks, a submission the kernel refuses) is done the ordinary way.

// asyncIO says whether whole-block I/O on the device may go through AIO.
func (d *Dev) asyncIO() bool { return d.direct != nil && aio.Shared() != nil }

// directAsync starts a read or write of p at off through AIO (see above);
// false: not started, done will not be called. Memory that is not
// aligned goes through an aligned buffer, up to directChunk.
func (d *Dev) directAsync(write bool, p []byte, off int64, done func(error)) bool {
	c := aio.Shared()
	if c == nil || !d.directOK(off, int64(len(p))) || len(p) == 0 {
		return false
	}
	if aligned(p) {
		return c.Submit(write, d.directFD, p, off, aio.Done(done))
	}
	if len(p) > directChunk {
		return false
	}
	ab := getAlignedBuf(len(p))
	b := ab.b[:len(p)]
	if write {
		copy(b, p)
	}
	ok := c.Submit(write, d.directFD, b, off, func(err error) {
		if !write && err == nil {
			copy(p, b)
		}
		putAlignedBuf(ab)
		done(err)
	})
	if !ok {
		putAlignedBuf(ab)
	}
	return ok
}

// localAsyncErr is an asynchronous request's result on a local device in
// the words full uses.
func (d *Dev) localAsyncErr(kind AsyncKind, off int64, err error) error {
	what := "read"
	if kind == AsyncWrite {
		what = "write"
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, aio.ErrShort):
		return d.shortErr(what, off)
	}
	return d.localErr(what, off, err)
}
