package targets

import (
	"context"
	"fmt"
	"sync"
	"syscall"
)

// cryptBounce is the size of a write's bounce buffer: a write is encrypted
// and written this much at a time, so that a big write needs no big buffer.
const cryptBounce = 512 << 10

// cryptScratches pools the per-request scratch (IV blocks and the write
// bounce buffer) of every crypt target: a request allocates nothing.
var cryptScratches = sync.Pool{New: func() any { return new(cryptScratch) }}

// errCryptNoDiscard answers a discard to a target without allow_discards:
// dm then gives the device no discard support, and the kernel answers a
// discard with EOPNOTSUPP.
var errCryptNoDiscard = fmt.Errorf("targets: crypt: discards need allow_discards: %w", syscall.EOPNOTSUPP)

// aligned refuses a request that is not whole crypt sectors, as dm does:
// a crypt sector is encrypted as a whole, and a device with sector_size
// 4096 has 4096-byte logical blocks, so the kernel answers EINVAL.
func (c *crypt) aligned(off, n int64) error {
	if off%c.sectorSize != 0 || n%c.sectorSize != 0 {
		return fmt.Errorf("targets: crypt: %d bytes at %d are not whole %d-byte crypt sectors: %w",
			n, off, c.sectorSize, syscall.EINVAL)
	}
	return nil
}

// The I/O methods ignore ctx, as linear does: pread and pwrite cannot be
// cancelled, and the crypto is bounded by the request's size.

// ReadAt reads the ciphertext into p and decrypts it there, in place: p is
// the caller's to fill, and no other buffer is needed.
func (c *crypt) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := c.aligned(off, int64(len(p))); err != nil {
		return err
	}
	if err := c.dev.ReadAt(p, c.offset+off); err != nil {
		return err
	}
	s := cryptScratches.Get().(*cryptScratch)
	k := c.key.Load().cipher
	for i := int64(0); i < int64(len(p)); i += c.sectorSize {
		sec := p[i : i+c.sectorSize]
		k.decrypt(sec, sec, c.ivNumber(off+i), s)
	}
	cryptScratches.Put(s)
	return nil
}

// WriteAt encrypts p into a bounce buffer, never into p (the NBD server
// owns it, and a failed write must not have changed it), and writes that.
// With FUA the device is synced after the last piece.
func (c *crypt) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	if err := c.aligned(off, int64(len(p))); err != nil {
		return err
	}
	err := c.encryptWrite(off, int64(len(p)), func(i, n int64) []byte { return p[i : i+n] })
	if err == nil && flags&FUA != 0 {
		err = c.dev.Sync()
	}
	return err
}

// Zero writes encrypted zeros: zeros on the device would decrypt to
// garbage, so a hole is never punched (dm-crypt has no write-zeroes; the
// kernel writes zero pages through it). Fast zeroing is thus refused.
func (c *crypt) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	if err := c.aligned(off, length); err != nil {
		return err
	}
	if flags.Fast {
		return ErrNotSupported
	}
	return c.encryptWrite(off, length, func(_, n int64) []byte { return zeroBuf[:n] })
}

// encryptWrite encrypts length bytes at off, a bounce buffer at a time,
// and writes them; src(i, n) is the plaintext of [i, i+n) of the request.
func (c *crypt) encryptWrite(off, length int64, src func(i, n int64) []byte) error {
	s := cryptScratches.Get().(*cryptScratch)
	defer cryptScratches.Put(s)
	if s.bounce == nil {
		s.bounce = make([]byte, cryptBounce)
	}
	k := c.key.Load().cipher
	for done := int64(0); done < length; {
		n := min(length-done, cryptBounce)
		plain := src(done, n)
		for i := int64(0); i < n; i += c.sectorSize {
			k.encrypt(s.bounce[i:i+c.sectorSize], plain[i:i+c.sectorSize], c.ivNumber(off+done+i), s)
		}
		if err := c.dev.WriteAt(s.bounce[:n], c.offset+off+done); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// Trim passes the discard down with allow_discards (the range then reads
// as whatever the device's discarded blocks decrypt to), and is refused
// without it, as the kernel refuses it. A discard too must be whole crypt
// sectors: the kernel refuses one that is not whole logical blocks.
func (c *crypt) Trim(_ context.Context, off, length int64) error {
	if !c.discards {
		return errCryptNoDiscard
	}
	if err := c.aligned(off, length); err != nil {
		return err
	}
	return c.dev.Trim(c.offset+off, length)
}

// Extents reports the whole range as data: a hole in the device reads as
// zeros of ciphertext, which decrypt to garbage, not to zeros, so no part
// of a crypt target is known to read as zeros.
func (c *crypt) Extents(_ context.Context, _, length int64, emit func(Extent) bool) error {
	emit(Extent{Length: length})
	return nil
}

// SpliceTo declines: the data must be decrypted in user space, so a pipe
// would only add a copy to what ReadAt does. The caller reads the range
// with ReadAt instead.
func (c *crypt) SpliceTo(context.Context, int, int64, int64) error { return ErrPipeFull }
