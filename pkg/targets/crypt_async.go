package targets

import (
	"context"
	"sync"
)

// crypt over a remote device, or over a block device read with O_DIRECT
// (dev_aio.go), takes reads and writes asynchronously (AsyncTarget), as
// linear does: dm-crypt over a disk is the commonest crypt there is, and
// served with pread and pwrite it held the disk near one request in
// flight (see dev_aio.go).
//
// The crypto runs on a goroutine of its own, never on the caller or in
// done: the caller is the server's reader, and done runs on the AIO
// reaper or a leg's reply reader, each shared by every request; a
// megabyte of AES there would hold all of them, and serialize on one core
// the work the blocking path spreads over workers. A goroutine costs
// about what waking a worker does, on any machine. (Decrypting a 4 KiB
// read on the reaper itself ran 13% more reads on the 2-CPU VM, but only
// because one core's AES is enough there; not taken.)
//
// A read is started at once into the caller's buffer and decrypted there
// when it completes. A write is encrypted into a buffer of its own
// (aligned, so a direct device needs no bounce), then started; if the
// device will not take it then, the goroutine writes it the blocking way.

var _ AsyncTarget = (*crypt)(nil)

// cryptAsyncMax bounds an asynchronous write's buffer; a larger request
// takes the blocking path, which encrypts cryptBounce at a time.
const cryptAsyncMax = directChunk

// CanAsync says whether the device is remote or takes AIO.
func (c *crypt) CanAsync() bool { return c.dev.Remote() || c.dev.asyncIO() }

// cryptReq is one asynchronous crypt request, pooled, with its device
// callback bound once.
type cryptReq struct {
	c    *crypt
	p    []byte      // a read's destination, a write's plaintext
	ct   *alignedBuf // a write's ciphertext
	off  int64       // in the target
	done func(error)
	// ioDoneFn is ioDone bound to this request: the device's done.
	ioDoneFn func(error)
}

var cryptReqs = sync.Pool{New: func() any { return new(cryptReq) }}

func (c *crypt) newReq(p []byte, off int64, done func(error)) *cryptReq {
	r := cryptReqs.Get().(*cryptReq)
	if r.ioDoneFn == nil {
		r.ioDoneFn = r.ioDone // once per pooled cryptReq
	}
	r.c, r.p, r.off, r.done = c, p, off, done
	return r
}

// free clears r and pools it; its buffer, if any, is given back first.
func (r *cryptReq) free() {
	if r.ct != nil {
		putAlignedBuf(r.ct)
	}
	*r = cryptReq{ioDoneFn: r.ioDoneFn}
	cryptReqs.Put(r)
}

// ReadAsync starts reading the ciphertext into p; a goroutine decrypts
// it there once the device is done. A range that is not whole crypt
// sectors takes the blocking path, which says why.
func (c *crypt) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if c.aligned(off, int64(len(p))) != nil {
		return false
	}
	r := c.newReq(p, off, done)
	if !c.dev.ReadAsync(ctx, p, c.offset+off, r.ioDoneFn) {
		r.free()
		return false
	}
	return true
}

// ioDone is the device's done for a read or a write. It must not block:
// a read's decryption goes to a goroutine.
func (r *cryptReq) ioDone(err error) {
	if r.ct != nil || err != nil {
		r.finish(err)
		return
	}
	go r.decrypt()
}

func (r *cryptReq) decrypt() {
	r.c.decryptInPlace(r.p, r.off)
	r.finish(nil)
}

// finish frees r and gives its caller err.
func (r *cryptReq) finish(err error) {
	done := r.done
	r.free()
	done(err)
}

// WriteAsync takes a write whole crypt sectors long and at most
// cryptAsyncMax, and has a goroutine encrypt it and start it on the
// device (see above). The goroutine reads p before done is called.
func (c *crypt) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	n := int64(len(p))
	if n == 0 || n > cryptAsyncMax || c.aligned(off, n) != nil {
		return false
	}
	if !c.dev.Remote() && !c.dev.directOK(c.offset+off, n) {
		return false
	}
	r := c.newReq(p, off, done)
	r.ct = getAlignedBuf(len(p))
	go r.encryptAndWrite(ctx)
	return true
}

func (r *cryptReq) encryptAndWrite(ctx context.Context) {
	c, ct := r.c, r.ct.b[:len(r.p)]
	s := cryptScratches.Get().(*cryptScratch)
	c.encryptInto(ct, r.p, r.off, s)
	cryptScratches.Put(s)
	if c.dev.WriteAsync(ctx, ct, c.offset+r.off, r.ioDoneFn) {
		return
	}
	r.finish(settle(c.dev.WriteAt(ct, c.offset+r.off)))
}

// AsyncErr is the device's error for a request at off; a write done the
// blocking way (encryptAndWrite) has its error settled already.
func (c *crypt) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	if err, ok := settled(err); ok {
		return err
	}
	return c.dev.asyncErr(kind, c.offset+off, err)
}

// CanSpliceWrite: no; the data must be encrypted in user space.
func (c *crypt) CanSpliceWrite() bool { return false }

// SpliceWriteAsync and SpliceReadAsync take nothing: a pipe cannot carry
// data that must be encrypted or decrypted on the way.
func (c *crypt) SpliceWriteAsync(context.Context, int, int64, []byte, int64, func(error)) bool {
	return false
}

func (c *crypt) SpliceReadAsync(context.Context, int, int64, int64, func(error)) bool {
	return false
}
