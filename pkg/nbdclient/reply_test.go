package nbdclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
)

// dataChunk is an OFFSET_DATA chunk of data at off; holeChunk an
// OFFSET_HOLE chunk of n bytes at off.
func dataChunk(flags uint16, cookie, off uint64, data []byte) []byte {
	return chunkBytes(flags, chunkOffsetData, cookie, append(binary.BigEndian.AppendUint64(nil, off), data...))
}

func holeChunk(flags uint16, cookie, off uint64, n uint32) []byte {
	return chunkBytes(flags, chunkOffsetHole, cookie, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, off), n))
}

// chunkedRead reads len(p) bytes at 0 into p from a server that does not
// offer DF and answers the read with the chunks reply makes for its
// cookie.
func chunkedRead(t *testing.T, p []byte, reply func(cookie uint64) [][]byte) error {
	cl := pipeClient(t, Options{}, func(srv net.Conn) {
		if fakeHandshakeFlags(srv, FlagHasFlags) != nil { // structured replies, no DF
			return
		}
		_, cookie, _, err := readReq(srv)
		if err != nil {
			return
		}
		go io.Copy(io.Discard, srv) // a DISC, if the client lives to send one
		for _, c := range reply(cookie) {
			if _, err := srv.Write(c); err != nil {
				return
			}
		}
	})
	return cl.ReadAt(testCtx(t), p, 0)
}

// TestReadChunksOutOfOrder: without DF a read may come in data and hole
// chunks in any order; they are put together into the buffer.
func TestReadChunksOutOfOrder(t *testing.T) {
	p := bytes.Repeat([]byte{0xAA}, 4096)
	err := chunkedRead(t, p, func(cookie uint64) [][]byte {
		return [][]byte{
			dataChunk(0, cookie, 2048, bytes.Repeat([]byte{3}, 2048)),
			holeChunk(0, cookie, 0, 1024),
			dataChunk(chunkFlagDone, cookie, 1024, bytes.Repeat([]byte{2}, 1024)),
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(make([]byte, 1024), bytes.Repeat([]byte{2}, 1024), bytes.Repeat([]byte{3}, 2048))
	if !bytes.Equal(p, want) {
		t.Fatal("chunks put together wrongly")
	}
}

// TestReadChunksOverlap: two chunks that describe the same bytes add up
// to the read's length while other bytes were never sent; the read must
// fail, not return the buffer's old contents as data. Overlaps of data
// with data, and of a hole with data, are both refused.
func TestReadChunksOverlap(t *testing.T) {
	for name, second := range map[string]func(cookie uint64) []byte{
		"data on data": func(cookie uint64) []byte {
			return dataChunk(chunkFlagDone, cookie, 0, []byte("BBBB"))
		},
		"hole on data": func(cookie uint64) []byte {
			return holeChunk(chunkFlagDone, cookie, 2, 4)
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := bytes.Repeat([]byte{0xAA}, 8)
			err := chunkedRead(t, p, func(cookie uint64) [][]byte {
				return [][]byte{dataChunk(0, cookie, 0, []byte("BBBB")), second(cookie)}
			})
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("overlapping chunks: read returned %v, data %q", err, p)
			}
		})
	}
}

// TestReadChunksTooScattered: a server that splits a read into more
// disjoint pieces than the client keeps track of is refused, rather than
// making the client remember (and search) an unbounded list. The reply
// is otherwise whole: every even byte, then every odd one.
func TestReadChunksTooScattered(t *testing.T) {
	p := make([]byte, 2*(maxReadSpans+1))
	err := chunkedRead(t, p, func(cookie uint64) [][]byte {
		var cs [][]byte
		for odd := range 2 {
			for i := odd; i < len(p); i += 2 {
				var flags uint16
				if i == len(p)-1 {
					flags = chunkFlagDone
				}
				cs = append(cs, dataChunk(flags, cookie, uint64(i), []byte{1}))
			}
		}
		return cs
	})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("a read in %d scattered pieces: %v", len(p), err)
	}
}

// TestClaim checks the bookkeeping of the ranges a read's chunks covered:
// adjacent ranges merge (so in-order chunks keep one range, whatever
// their number), gaps stay apart, and any overlap is refused.
func TestClaim(t *testing.T) {
	type r struct{ off, n int64 }
	for _, tc := range []struct {
		name   string
		claims []r
		bad    int    // index of the first claim that must fail; -1: none
		want   []span // the ranges kept after the good claims
	}{
		{"forwards", []r{{0, 10}, {10, 10}, {20, 10}}, -1, []span{{0, 30}}},
		{"backwards", []r{{20, 10}, {10, 10}, {0, 10}}, -1, []span{{0, 30}}},
		{"gap filled", []r{{0, 10}, {20, 10}, {10, 10}}, -1, []span{{0, 30}}},
		{"gaps", []r{{40, 5}, {0, 5}, {20, 5}}, -1, []span{{0, 5}, {20, 25}, {40, 45}}},
		{"same", []r{{0, 10}, {0, 10}}, 1, []span{{0, 10}}},
		{"inside", []r{{0, 10}, {3, 2}}, 1, []span{{0, 10}}},
		{"around", []r{{3, 2}, {0, 10}}, 1, []span{{3, 5}}},
		{"tail", []r{{0, 10}, {9, 5}}, 1, []span{{0, 10}}},
		{"head", []r{{10, 10}, {5, 6}}, 1, []span{{10, 20}}},
		{"across a gap", []r{{0, 5}, {10, 5}, {4, 7}}, 2, []span{{0, 5}, {10, 15}}},
	} {
		cl := newCall()
		for i, c := range tc.claims {
			err := cl.claim(c.off, c.n)
			if (err != nil) != (i == tc.bad) {
				t.Errorf("%s: claim %d [%d,+%d): %v", tc.name, i, c.off, c.n, err)
			}
			if err != nil {
				break
			}
		}
		if !slices.Equal(cl.spans, tc.want) {
			t.Errorf("%s: ranges %v kept, want %v", tc.name, cl.spans, tc.want)
		}
	}
}

// errorOffsetChunk is an ERROR_OFFSET chunk: errno code, a message, and
// the offset it names.
func errorOffsetChunk(flags uint16, cookie uint64, code uint32, msg string, off uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	return chunkBytes(flags, chunkErrorOffset, cookie, binary.BigEndian.AppendUint64(b, off))
}

// TestReadErrorOffset: an error at an offset inside the request is the
// read's error; one at an offset outside it (at its end, or far after)
// breaks the protocol, as the spec says it must lie within: the client
// drops the connection, and the read fails with EIO of its own, not with
// the server's error.
func TestReadErrorOffset(t *testing.T) {
	for _, tc := range []struct {
		off      uint64
		protocol bool
	}{{0, false}, {4095, false}, {4096, true}, {1 << 40, true}, {1<<64 - 1, true}} {
		p := make([]byte, 4096)
		err := chunkedRead(t, p, func(cookie uint64) [][]byte {
			return [][]byte{errorOffsetChunk(chunkFlagDone, cookie, 5, "media", tc.off)}
		})
		var re *RemoteError
		switch {
		case tc.protocol && (errors.As(err, &re) || !errors.Is(err, syscall.EIO)):
			t.Errorf("error offset %d for a read of 4096 at 0: %v, want the connection dropped (EIO, not the server's error)", tc.off, err)
		case !tc.protocol && (!errors.As(err, &re) || re.Errno != syscall.EIO):
			t.Errorf("error offset %d for a read of 4096 at 0: %v, want the server's EIO", tc.off, err)
		}
	}
}
