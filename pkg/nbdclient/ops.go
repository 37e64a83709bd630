package nbdclient

import (
	"context"
	"fmt"
	"syscall"
)

// ReadAt fills p from off.
func (cl *Client) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := cl.check(off, int64(len(p))); err != nil {
		return err
	}
	return cl.each(off, int64(len(p)), func(o, n int64) error {
		buf := p[o-off : o-off+n]
		req := request{typ: cmdRead, flags: cl.readFlags(n), offset: uint64(o), length: uint32(n)}
		err := cl.do(ctx, req, nil, buf).err
		if overflowed(req, err) { // refused unfragmented: see overflow.go
			cl.noteOverflow(n)
			req.flags &^= cmdFlagDF
			err = cl.do(ctx, req, nil, buf).err
		}
		return err
	})
}

// WriteAt writes p at off; with fua the data is durable when it returns
// (NBD_CMD_FLAG_FUA, or a flush after it where the server lacks FUA).
func (cl *Client) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	if err := cl.writable(); err != nil {
		return err
	}
	if err := cl.check(off, int64(len(p))); err != nil {
		return err
	}
	var flags uint16
	if fua && cl.info.Flags&FlagSendFUA != 0 {
		flags = cmdFlagFUA
	}
	err := cl.each(off, int64(len(p)), func(o, n int64) error {
		req := request{typ: cmdWrite, flags: flags, offset: uint64(o), length: uint32(n)}
		return cl.do(ctx, req, p[o-off:o-off+n], nil).err
	})
	if err == nil && fua && flags == 0 {
		err = cl.Flush(ctx)
	}
	return err
}

// Flush makes completed writes durable; a server that offers no FLUSH has
// no cache to flush.
func (cl *Client) Flush(ctx context.Context) error {
	if cl.info.Flags&FlagSendFlush == 0 || cl.info.Flags&FlagReadOnly != 0 {
		return nil
	}
	err := cl.do(ctx, request{typ: cmdFlush}, nil, nil).err
	if cl.lostWrites.Swap(false) && err == nil {
		err = ErrWritesLost
	}
	return err
}

// Trim discards a range; where the server takes no TRIM it does nothing
// (a discard is advisory).
func (cl *Client) Trim(ctx context.Context, off, n int64) error {
	if err := cl.writable(); err != nil {
		return err
	}
	if err := cl.check(off, n); err != nil {
		return err
	}
	if cl.info.Flags&FlagSendTrim == 0 {
		return nil
	}
	return cl.each(off, n, func(o, m int64) error {
		return cl.do(ctx, request{typ: cmdTrim, offset: uint64(o), length: uint32(m)}, nil, nil).err
	})
}

// Zero makes a range read as zeros (NBD_CMD_WRITE_ZEROES); noHole keeps it
// allocated; fast fails with ENOTSUP rather than be slow. A server without
// WRITE_ZEROES gets zeros written.
func (cl *Client) Zero(ctx context.Context, off, n int64, noHole, fast bool) error {
	if err := cl.writable(); err != nil {
		return err
	}
	if err := cl.check(off, n); err != nil {
		return err
	}
	f := cl.info.Flags
	if f&FlagWriteZeroes == 0 || (fast && f&FlagSendFastZero == 0) {
		if fast {
			return fmt.Errorf("nbdclient: no fast zero on this export: %w", syscall.ENOTSUP)
		}
		return cl.writeZeros(ctx, off, n)
	}
	var flags uint16
	if noHole {
		flags |= cmdFlagNoHole
	}
	if fast {
		flags |= cmdFlagFastZero
	}
	return cl.each(off, n, func(o, m int64) error {
		return cl.do(ctx, request{typ: cmdWriteZeroes, flags: flags, offset: uint64(o), length: uint32(m)}, nil, nil).err
	})
}

var zeros = make([]byte, 1<<20)

func (cl *Client) writeZeros(ctx context.Context, off, n int64) error {
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if err := cl.WriteAt(ctx, zeros[:m], off, false); err != nil {
			return err
		}
		off, n = off+m, n-m
	}
	return nil
}

// Extents reports base:allocation for [off, off+n) in order, calling emit
// per run until it returns false. Without the context (a server that has
// none) the range is reported as one run of data.
func (cl *Client) Extents(ctx context.Context, off, n int64, emit func(Extent) bool) error {
	if err := cl.check(off, n); err != nil {
		return err
	}
	if !cl.info.HasAllocation {
		if n > 0 {
			emit(Extent{Length: n})
		}
		return nil
	}
	for n > 0 {
		m := min(n, 1<<31)
		res := cl.do(ctx, request{typ: cmdBlockStatus, offset: uint64(off), length: uint32(m)}, nil, nil)
		if res.err != nil {
			return res.err
		}
		if len(res.extents) == 0 {
			return fmt.Errorf("%w: block status without extents", ErrProtocol)
		}
		for _, e := range res.extents {
			if !emit(e) {
				return nil
			}
			off, n = off+e.Length, n-e.Length
		}
	}
	return nil
}
