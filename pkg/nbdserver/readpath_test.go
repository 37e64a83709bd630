package nbdserver

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
)

// A reset connection makes read(2) fail with ECONNRESET; the spinning
// reader reports a count of 0 with it, never read(2)'s -1 (which inbuf
// once added to its indices and crashed the daemon).
func TestSpinReaderReset(t *testing.T) {
	for _, spin := range []bool{false, true} {
		sc, cc := tcpPair(t)
		var busy atomic.Int32
		s := newTestSpinReader(t, sc, &busy)
		s.readerServes = spin
		cc.Write([]byte("x"))
		cc.SetLinger(0)
		cc.Close()
		b := newInbuf(s)
		_, err := b.Peek(requestHeaderSize)
		b.release()
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
			t.Fatalf("spin=%v: Peek after a reset: %v, want ECONNRESET", spin, err)
		}
	}
}

// scripted is a source driven by a script, one byte per Read: short reads,
// zero-byte reads, errors (EAGAIN, ECONNRESET, EOF, with a count of 0 or
// -1) and impossible counts. Past the script it hands out the rest of the
// stream, then EOF. delivered is how many bytes it really handed out.
type scripted struct {
	stream    []byte
	script    []byte
	delivered int
	failed    bool // it returned an error or a bogus count, or 100 zero-byte reads in a row
	zeros     int
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.script) == 0 {
		if s.delivered == len(s.stream) {
			return 0, io.EOF
		}
		n := copy(p, s.stream[s.delivered:])
		s.delivered += n
		return n, nil
	}
	op := s.script[0]
	s.script = s.script[1:]
	if op&7 != 4 {
		s.zeros = 0
	}
	arg := int(op >> 3)
	switch op & 7 {
	case 0, 1, 2, 3: // a short read
		n := copy(p[:min(len(p), arg*(1+int(op&3))+1)], s.stream[s.delivered:])
		s.delivered += n
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	case 4:
		s.zeros++
		s.failed = s.failed || s.zeros >= 100 // inbuf gives up: io.ErrNoProgress
		return 0, nil
	case 5:
		s.failed = true
		n := 0
		if arg&4 != 0 {
			n = -1
		}
		return n, []error{syscall.EAGAIN, syscall.ECONNRESET, io.EOF, io.ErrUnexpectedEOF}[arg&3]
	case 6:
		s.failed = true
		return -1 - arg, nil
	default:
		s.failed = true
		return len(p) + 1 + arg, nil
	}
}

// shapedRequests builds a request stream from shape, one request a byte:
// reads, and writes whose payloads stay in the buffer, are copied out or
// are larger than the buffer; then DISC.
func shapedRequests(shape []byte) ([]request, [][]byte, []byte) {
	lengths := []uint32{0, 1, 512, 4096, maxTake, maxTake + 1, 300 << 10}
	var reqs []request
	var payloads [][]byte
	var stream []byte
	for i, b := range shape {
		r := request{typ: cmdRead, cookie: uint64(i), offset: uint64(b) << 9, length: lengths[int(b>>1)%len(lengths)]}
		var payload []byte
		if b&1 != 0 {
			r.typ = cmdWrite
			payload = bytes.Repeat([]byte{b}, int(r.length))
		}
		reqs = append(reqs, r)
		payloads = append(payloads, payload)
		stream = append(stream, reqBytes(r.typ, 0, r.offset, r.length)...)
		for k := range 8 { // the cookie: i, big-endian
			stream[len(stream)-requestHeaderSize+8+k] = byte(uint64(i) >> (56 - 8*k))
		}
		stream = append(stream, payload...)
	}
	return reqs, payloads, append(stream, reqBytes(cmdDisc, 0, 0, 0)...)
}

// checkReadPath feeds the stream of shape through scripted reads to the
// request reader. Whatever the source does, nothing panics, and the
// requests read are exactly the whole ones among the bytes delivered:
// all of them (then DISC) when the source never failed.
func checkReadPath(t *testing.T, script, shape []byte) {
	reqs, payloads, stream := shapedRequests(shape)
	src := &scripted{stream: stream, script: script}
	c := &conn{
		srv:    &Server{},
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		br:     newInbuf(src),
		budget: budget{maxN: 1 << 20, maxBytes: 1 << 40},
	}
	defer c.br.release()
	got := 0
	for {
		w, ok := c.readOne(true, got%2 == 0)
		if !ok {
			break
		}
		if got >= len(reqs) {
			t.Fatalf("read %d requests, only %d were sent", got+1, len(reqs))
		}
		if w.r != reqs[got] || !bytes.Equal(w.payload, payloads[got]) {
			t.Fatalf("request %d: got %+v (%d payload bytes), want %+v", got, w.r, len(w.payload), reqs[got])
		}
		w.done()
		c.budget.release(w.charge)
		got++
	}
	// The whole requests among the bytes delivered.
	want, at := 0, 0
	for i := range reqs {
		at += requestHeaderSize + len(payloads[i])
		if at > src.delivered {
			break
		}
		want = i + 1
	}
	if got != want {
		t.Fatalf("read %d requests; %d whole ones were delivered (%d of %d bytes, failed %v)", got, want, src.delivered, len(stream), src.failed)
	}
	if !src.failed && (got != len(reqs) || !c.sawDisc) {
		t.Fatalf("source never failed, yet read %d of %d requests (DISC seen: %v)", got, len(reqs), c.sawDisc)
	}
}

func TestReadPathScripted(t *testing.T) {
	for _, tc := range []struct{ script, shape []byte }{
		{nil, []byte{0, 1, 3, 5, 7, 9, 11, 13}},
		{[]byte{0, 0, 8, 4, 4, 4}, []byte{1, 3, 13, 0}},
		{[]byte{0, 5}, []byte{0, 1}},        // EAGAIN mid-stream
		{[]byte{0, 8, 37}, []byte{13, 13}},  // ECONNRESET with -1
		{[]byte{0, 6}, []byte{0}},           // -1, no error
		{[]byte{7}, []byte{0}},              // more than asked
		{bytes.Repeat([]byte{4}, 120), nil}, // no progress
	} {
		checkReadPath(t, tc.script, tc.shape)
	}
}

// FuzzReadPath drives the TCP read path (inbuf and readOne) with a source
// that returns short reads, zero-byte reads, errors and bogus counts.
func FuzzReadPath(f *testing.F) {
	f.Add([]byte{0, 0, 8, 4, 4, 4}, []byte{1, 3, 13, 0})
	f.Add([]byte{0, 8, 37}, []byte{13, 13})
	f.Add([]byte{0, 6, 7}, []byte{0, 1, 2})
	f.Add([]byte{3, 11, 19, 27, 4, 5}, []byte{9, 11, 12})
	f.Fuzz(func(t *testing.T, script, shape []byte) {
		if len(shape) > 64 {
			shape = shape[:64]
		}
		checkReadPath(t, script, shape)
	})
}
