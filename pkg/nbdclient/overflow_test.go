package nbdclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// dfLimitServer plays nbd-server (the NBD project's own, 3.25 on): it
// offers DF, and answers a read with DF longer than limit with an
// NBD_EOVERFLOW error chunk, as the spec lets it ("too large to send
// without fragmentation"; only reads up to 64 KiB must be served
// unfragmented). Other reads get their data, byte i of the export being
// byte(i/512), in two chunks, second half first.
func dfLimitServer(limit uint32) func(net.Conn) {
	return func(c net.Conn) {
		if fakeHandshakeFlags(c, FlagHasFlags|FlagSendDF) != nil {
			return
		}
		for {
			var h [requestSize]byte
			if _, err := io.ReadFull(c, h[:]); err != nil || binary.BigEndian.Uint16(h[6:]) != cmdRead {
				return
			}
			flags, cookie := binary.BigEndian.Uint16(h[4:]), binary.BigEndian.Uint64(h[8:])
			off, n := binary.BigEndian.Uint64(h[16:]), binary.BigEndian.Uint32(h[24:])
			var reply []byte
			if flags&cmdFlagDF != 0 && n > limit {
				msg := "Request too long for unfragmented reply"
				p := binary.BigEndian.AppendUint32(nil, uint32(syscall.EOVERFLOW))
				p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
				reply = chunkBytes(chunkFlagDone, chunkError, cookie, append(p, msg...))
			} else {
				data := make([]byte, n)
				for i := range data {
					data[i] = byte((off + uint64(i)) / 512)
				}
				half := n / 2
				reply = append(dataChunk(0, cookie, off+uint64(half), data[half:]), dataChunk(chunkFlagDone, cookie, off, data[:half])...)
			}
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	}
}

// TestReadOverflowWithoutDF: a server may refuse a read with DF that it
// would have to fragment (NBD_EOVERFLOW), and nbd-server does for reads
// over 1 MiB; the spec says the client should be prepared for it. The
// client sends DF with every read it can, so such a read must be sent
// again without DF, its chunks put together, rather than fail with EIO;
// a spliced one (which needs DF) is left to the caller's ordinary read
// (ErrNoSplice). Each on a client of its own: after a refusal, reads as
// long go without DF from the start.
func TestReadOverflowWithoutDF(t *testing.T) {
	const off, n = 4096, 256 << 10
	want := make([]byte, n)
	for i := range want {
		want[i] = byte((off + i) / 512)
	}
	for name, read := range map[string]func(*Client, []byte) error{
		"ReadAt": func(cl *Client, p []byte) error { return cl.ReadAt(testCtx(t), p, off) },
		"ReadAsync": func(cl *Client, p []byte) error {
			res, done := nbdtest.NewAsync()
			if !cl.ReadAsync(testCtx(t), p, off, done) {
				t.Fatal("ReadAsync refused")
			}
			return res.Wait(t)
		},
		"SpliceRead": func(cl *Client, p []byte) error {
			_, w := testPipe(t, 1<<20)
			if err := cl.SpliceRead(testCtx(t), w, off, n); !errors.Is(err, ErrNoSplice) {
				t.Fatalf("spliced read refused unfragmented: %v", err)
			}
			return cl.ReadAt(testCtx(t), p, off) // what its caller does then
		},
		"SpliceReadAsync": func(cl *Client, p []byte) error {
			_, w := testPipe(t, 1<<20)
			res, done := nbdtest.NewAsync()
			if !cl.SpliceReadAsync(testCtx(t), w, off, n, done) {
				t.Fatal("SpliceReadAsync refused")
			}
			if err := res.Wait(t); !errors.Is(err, ErrNoSplice) {
				t.Fatalf("spliced read refused unfragmented: %v", err)
			}
			return cl.ReadAt(testCtx(t), p, off)
		},
	} {
		t.Run(name, func(t *testing.T) {
			cl, err := Dial(testCtx(t), Options{Network: "unix", Address: serveUnix(t, dfLimitServer(64<<10)), MaxConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := make([]byte, n)
			if err := read(cl, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read of 256 KiB: %v (data equal: %v)", err, bytes.Equal(got, want))
			}
			if cl.readFlags(n) != 0 || cl.readFlags(dfGuaranteed) == 0 {
				t.Fatalf("after the refusal, DF on reads of 256 KiB: %v, of 64 KiB: %v", cl.readFlags(n) != 0, cl.readFlags(dfGuaranteed) != 0)
			}
		})
	}
}
