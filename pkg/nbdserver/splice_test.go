package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// spliceMem is a memExport that also splices: it writes the range into the
// pipe (a copy here; the point is the server's side of the pipe).
type spliceMem struct {
	*memExport
	spliced  atomic.Int64
	noSplice bool // answer ErrNoSplice, after writing part of the range
}

func (s *spliceMem) SpliceRead(_ context.Context, pipe int, off, n int64) error {
	if off == s.failOn {
		return fmt.Errorf("mem: %w", syscall.EIO)
	}
	p := s.data[off : off+n]
	if s.noSplice {
		unix.Write(pipe, p[:512]) // a dirty pipe must not reach the client
		return fmt.Errorf("mem: %w", ErrNoSplice)
	}
	for len(p) > 0 {
		m, err := unix.Write(pipe, p)
		if err != nil {
			return err
		}
		p = p[m:]
	}
	s.spliced.Add(1)
	return nil
}

// Large reads go through a pipe, in simple and structured replies, mixed
// with small reads and writes sent in one go; every reply carries the
// right bytes. A splice error is an error reply; ErrNoSplice falls back to
// ReadAt.
func TestSplicedReads(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			m := &spliceMem{memExport: newMem(8 << 20)}
			r := rand.New(rand.NewPCG(5, 6))
			for i := range m.data {
				m.data[i] = byte(r.Uint32())
			}
			m.failOn = 7 << 20
			m.as = m
			_, sock := startServer(t, testExports{"a": m.memExport}, nil)
			c := dial(t, sock)
			c.connect("a", structured)

			sendMixedReads(t, c, structured, m.data)
			if m.spliced.Load() == 0 {
				t.Fatal("no read was spliced")
			}

			// A failing splice: an error reply, and the connection lives.
			expectReadError(t, c, structured, 200, 7<<20, 256<<10)

			// ErrNoSplice, after dirtying the pipe: ReadAt's bytes arrive.
			m.noSplice = true
			if !bytes.Equal(readOne(c, structured, 201, 1<<20, 128<<10), m.data[1<<20:1<<20+128<<10]) {
				t.Fatal("fallback read returned other bytes")
			}
		})
	}
}

// sendMixedReads sends, in one go, 24 reads of 512 B to 1 MiB at random
// offsets below 6 MiB and a 512-byte write at 6 MiB (cookie 100), reads
// every reply, and checks each read's bytes against data.
func sendMixedReads(t *testing.T, c *client, structured bool, data []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	reqs := map[uint64]spliceReq{}
	var b []byte
	for i := uint64(1); i <= 24; i++ {
		q := spliceReq{int64(r.IntN(6<<20)) &^ 511, 512 << r.IntN(12)}
		reqs[i] = q
		b = requestBytes(b, cmdRead, 0, i, uint64(q.off), uint32(q.n), nil)
	}
	b = requestBytes(b, cmdWrite, 0, 100, 6<<20, 512, bytes.Repeat([]byte{7}, 512))
	c.write(b)
	for range len(reqs) + 1 {
		cookie, got := readSplicedReply(t, c, structured, reqs, 100)
		if q := reqs[cookie]; cookie != 100 && !bytes.Equal(got, data[q.off:q.off+q.n]) {
			t.Fatalf("cookie %d: read %d@%d returned other bytes", cookie, q.n, q.off)
		}
	}
}

// expectReadError sends a read and expects EIO for it, in a simple reply
// or an error chunk.
func expectReadError(t *testing.T, c *client, structured bool, cookie uint64, off, n int64) {
	t.Helper()
	c.request(cmdRead, 0, cookie, uint64(off), uint32(n), nil)
	if structured {
		if ch := c.chunk(); ch.typ != chunkError || binary.BigEndian.Uint32(ch.payload) != errIO {
			t.Fatalf("read %d@%d: chunk %+v, want EIO", n, off, ch)
		}
	} else if e, _ := c.simple(); e != errIO {
		t.Fatalf("read %d@%d: errno %d, want EIO", n, off, e)
	}
}

// readOne sends a read and returns its data.
func readOne(c *client, structured bool, cookie uint64, off, n int64) []byte {
	c.request(cmdRead, 0, cookie, uint64(off), uint32(n), nil)
	if structured {
		return c.chunk().payload[8:]
	}
	c.simple()
	return c.read(int(n))
}

// spliceReq is one read of TestSplicedReads.
type spliceReq struct{ off, n int64 }

// readSplicedReply reads the next reply, a chunk or a simple reply, to one
// of reqs or to the write with cookie write, and returns its cookie and,
// for a read, its data. A read's error fails the test.
func readSplicedReply(t *testing.T, c *client, structured bool, reqs map[uint64]spliceReq, write uint64) (uint64, []byte) {
	t.Helper()
	if magic, _ := c.br.Peek(4); structured && binary.BigEndian.Uint32(magic) == magicChunk {
		ch := c.chunk()
		if ch.cookie == write {
			return ch.cookie, nil
		}
		if ch.typ != chunkOffsetData || int64(binary.BigEndian.Uint64(ch.payload)) != reqs[ch.cookie].off {
			t.Fatalf("cookie %d: chunk type %d", ch.cookie, ch.typ)
		}
		return ch.cookie, ch.payload[8:]
	}
	e, cookie := c.simple()
	if e != 0 {
		t.Fatalf("cookie %d: errno %d", cookie, e)
	}
	if cookie == write {
		return cookie, nil
	}
	return cookie, c.read(int(reqs[cookie].n))
}

// A TCP connection starts copying large reads and handing its batches to
// workers, a UNIX one splicing and serving them on the reader (see
// startSetting): the first reads, before the tuner has timed a window,
// show the start. (Broken once by starting TCP with splicing on: the TCP
// read was spliced and the test failed; and with the reader serving on
// TCP: "over tcp the reader serves its batches at the start: true".)
func TestStartSettingByNetwork(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			m := &spliceMem{memExport: newMem(4 << 20)}
			m.as = m
			srv, addr := startServerOn(t, network, testExports{"a": m.memExport}, nil)
			c := dialNet(t, network, addr)
			c.connect("a", false)
			c.request(cmdRead, 0, 1, 0, 1<<20, nil)
			if e, _ := c.simple(); e != 0 {
				t.Fatalf("read: errno %d", e)
			}
			c.read(1 << 20)
			if got, want := m.spliced.Load() != 0, network == "unix"; got != want {
				t.Fatalf("over %s the first 1 MiB read was spliced: %v, want %v", network, got, want)
			}
			// One request: no window timed yet, the setting is the start.
			srv.mu.Lock()
			var knobs uint32
			for sc := range srv.conns {
				knobs = sc.knobs.Load()
			}
			srv.mu.Unlock()
			if got, want := knobs&knobReaderServes != 0, network == "unix"; got != want {
				t.Fatalf("over %s the reader serves its batches at the start: %v, want %v (setting %04b)", network, got, want, knobs)
			}
		})
	}
}
