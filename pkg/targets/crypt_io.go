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

// misaligned says why [off, off+n) of the target is not whole crypt
// sectors of the mapped device, or 0 when it is. dm-crypt checks a bio's
// position on the mapped device, not in the target (crypt_map): when the
// table starts or ends the target inside a logical block, a block wholly
// inside the target is served, from target sector 1 say, and the piece of
// a block the table cut at the target's edge is killed (EIO). A request
// that is not whole blocks itself never reaches dm: the kernel refuses it
// (EINVAL). A piece only shows its own edges: one misaligned inside the
// target is the request's, one at the target's edge is taken for the
// table's cut (a client that sends a misaligned request starting right at
// that edge gets EIO where the kernel would say EINVAL).
func (c *crypt) misaligned(off, n int64) syscall.Errno {
	start, end := c.begin+off, c.begin+off+n
	switch {
	case start%c.sectorSize != 0 && off != 0, end%c.sectorSize != 0 && off+n != c.size:
		return syscall.EINVAL
	case start%c.sectorSize != 0 || end%c.sectorSize != 0:
		return syscall.EIO
	}
	return 0
}

// aligned refuses a read, write or write-zeroes that is not whole crypt
// sectors of the mapped device (see misaligned): a crypt sector is
// encrypted as a whole.
func (c *crypt) aligned(off, n int64) error {
	if errno := c.misaligned(off, n); errno != 0 {
		return fmt.Errorf("targets: crypt: %d bytes at %d (%d into the device) are not whole %d-byte crypt sectors: %w",
			n, off, c.begin+off, c.sectorSize, errno)
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
	c.decryptInPlace(p, off)
	return nil
}

// decryptInPlace decrypts p, whole crypt sectors read from off.
func (c *crypt) decryptInPlace(p []byte, off int64) {
	s := cryptScratches.Get().(*cryptScratch)
	k := c.key.Load().cipher
	for i := int64(0); i < int64(len(p)); i += c.sectorSize {
		sec := p[i : i+c.sectorSize]
		k.decrypt(sec, sec, c.ivNumber(off+i), s)
	}
	cryptScratches.Put(s)
}

// encryptInto encrypts plain, whole crypt sectors to be written at off,
// into ct (as long as plain), with scratch s.
func (c *crypt) encryptInto(ct, plain []byte, off int64, s *cryptScratch) {
	k := c.key.Load().cipher
	for i := int64(0); i < int64(len(plain)); i += c.sectorSize {
		k.encrypt(ct[i:i+c.sectorSize], plain[i:i+c.sectorSize], c.ivNumber(off+i), s)
	}
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
	for done := int64(0); done < length; {
		n := min(length-done, cryptBounce)
		c.encryptInto(s.bounce[:n], src(done, n), off+done, s)
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
// sectors: the kernel refuses one that is not whole logical blocks
// (EINVAL). But dm-crypt passes a discard down before its alignment
// check, so the piece of one that the table cut at the target's edge
// goes down as it is.
func (c *crypt) Trim(_ context.Context, off, length int64) error {
	if !c.discards {
		return errCryptNoDiscard
	}
	if c.misaligned(off, length) == syscall.EINVAL {
		return c.aligned(off, length)
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
