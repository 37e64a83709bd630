package nbdclient

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// blockSizeInfo is an NBD_INFO_BLOCK_SIZE payload.
func blockSizeInfo(minimum, preferred, maximum uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, infoBlockSize)
	b = binary.BigEndian.AppendUint32(b, minimum)
	b = binary.BigEndian.AppendUint32(b, preferred)
	return binary.BigEndian.AppendUint32(b, maximum)
}

// blockSizeServer dials a client to a fake server that announces the
// block sizes info and answers reads and writes with success, and
// returns the client and a function that lists the requests' ranges.
func blockSizeServer(t *testing.T, info []byte) (*Client, func() []string) {
	var mu sync.Mutex
	var seen []string
	cl := pipeClient(t, Options{}, func(srv net.Conn) {
		if fakeHandshakeInfo(srv, FlagHasFlags, [][]byte{info}) != nil {
			return
		}
		for {
			var h [requestSize]byte
			if _, err := io.ReadFull(srv, h[:]); err != nil {
				return
			}
			typ, cookie := binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:])
			off, n := binary.BigEndian.Uint64(h[16:]), binary.BigEndian.Uint32(h[24:])
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%d+%d", off, n))
			mu.Unlock()
			var reply []byte
			switch typ {
			case cmdWrite:
				if _, err := io.CopyN(io.Discard, srv, int64(n)); err != nil {
					return
				}
				reply = chunkBytes(chunkFlagDone, chunkNone, cookie, nil)
			case cmdRead:
				reply = holeChunk(chunkFlagDone, cookie, off, n)
			default:
				return
			}
			if _, err := srv.Write(reply); err != nil {
				return
			}
		}
	})
	return cl, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestSplitKeepsMinimumBlock: a server's maximum payload need not be a
// power of 2 (the spec: at least the preferred block size), but every
// request's offset and length must be multiples of its minimum block
// size, which the client promised to honour by asking for
// NBD_INFO_BLOCK_SIZE. So a long request is split at a multiple of the
// minimum block below the maximum payload, never at the maximum itself.
func TestSplitKeepsMinimumBlock(t *testing.T) {
	for _, tc := range []struct{ minimum, preferred, maximum uint32 }{
		{512, 4096, 300000},
		{4096, 4096, 3 * 100000},
		{1, 4096, 1<<20 - 1},
	} {
		t.Run(fmt.Sprint(tc.minimum, "/", tc.maximum), func(t *testing.T) {
			cl, seen := blockSizeServer(t, blockSizeInfo(tc.minimum, tc.preferred, tc.maximum))
			p := make([]byte, fakeSize)
			if err := cl.ReadAt(testCtx(t), p, 0); err != nil {
				t.Fatal(err)
			}
			if err := cl.WriteAt(testCtx(t), p, 0, false); err != nil {
				t.Fatal(err)
			}
			unit := int64(max(tc.minimum, sectorSize))
			for _, r := range seen() {
				var off, n int64
				fmt.Sscanf(r, "%d+%d", &off, &n)
				if off%unit != 0 || n%unit != 0 || n > int64(tc.maximum) {
					t.Fatalf("request %s: not in %d-byte blocks, or over %d bytes (all: %v)", r, unit, tc.maximum, seen())
				}
			}
		})
	}
}
