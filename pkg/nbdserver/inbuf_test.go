package nbdserver

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// trickle hands out its data in reads of random sizes, as a socket does.
type trickle struct {
	data []byte
	rng  *rand.Rand
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(t.data), 1+t.rng.IntN(100000))
	copy(p, t.data[:n])
	t.data = t.data[n:]
	return n, nil
}

// readSizes records the size of every Read asked of it, and where its
// slice began, and serves them from an endless stream of zeroes.
type readSizes struct {
	asked []int
	into  []*byte
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.asked = append(r.asked, len(p))
	r.into = append(r.into, &p[0])
	clear(p)
	return len(p), nil
}

// With lean set, a Peek reads only what it was asked for: the header of a
// large write, not the start of its payload (which would then be copied
// out). A large Read into an empty buffer goes straight into the caller's
// slice, so the payload (or what is left of it after one socket read) is
// not copied out of the buffer either.
func TestInbufLeanAndDirectReads(t *testing.T) {
	src := &readSizes{}
	b := newInbuf(src)
	defer b.release()
	b.lean = true
	if _, err := b.Peek(requestHeaderSize); err != nil {
		t.Fatal(err)
	}
	if got := b.Buffered(); got != requestHeaderSize {
		t.Fatalf("lean Peek(%d) buffered %d bytes, want just the header", requestHeaderSize, got)
	}
	b.Discard(requestHeaderSize)
	src.asked, src.into = nil, nil
	payload := make([]byte, 128<<10) // or the tail of a larger one
	if _, err := io.ReadFull(b, payload); err != nil {
		t.Fatal(err)
	}
	if len(src.asked) != 1 || src.asked[0] != len(payload) || src.into[0] != &payload[0] {
		t.Fatalf("a 128 KiB payload was read as %v, want one read straight into it", src.asked)
	}
	// A small read still goes through the buffer, which then holds what
	// follows it for the next Peek.
	b.lean = false
	src.asked = nil
	if _, err := io.ReadFull(b, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if got := b.Buffered(); got < inbufSize/2 {
		t.Fatalf("after a 100-byte read %d bytes are buffered, want the rest of a full fill", got)
	}
}

// The read buffer against a model (the stream itself): random Peeks,
// Discards, Reads and Takes each see the stream's next bytes, and every
// slice handed out by Take keeps its bytes until unpinned, however much is
// read after it. Every chunk's pins come back to zero at the end.
func TestInbufModel(t *testing.T) {
	for seed := range uint64(8) {
		m := newInbufModel(t, seed)
		for m.pos < len(m.stream)-2*inbufSize {
			m.b.lean = m.rng.IntN(4) == 0
			m.step()
			m.seen[m.b.cur] = true
			// Unpin some, in any order, as finished requests do.
			for len(m.held) > 0 && m.rng.IntN(3) == 0 {
				m.unpin(m.rng.IntN(len(m.held)))
			}
		}
		for len(m.held) > 0 {
			m.unpin(0)
		}
		m.finish()
	}
}

// inbufModel is TestInbufModel's state for one seed: the inbuf under test,
// the stream it reads (the model) and how far into it the inbuf is, and
// the slices Take handed out and not yet unpinned.
type inbufModel struct {
	t      *testing.T
	seed   uint64
	rng    *rand.Rand
	stream []byte
	b      *inbuf
	pos    int
	held   []takenSlice
	seen   map[*inchunk]bool // every chunk the inbuf used
}

// takenSlice is a slice Take handed out, at off in the stream.
type takenSlice struct {
	p   []byte
	off int
	ch  *inchunk
}

func newInbufModel(t *testing.T, seed uint64) *inbufModel {
	rng := rand.New(rand.NewPCG(seed, 1))
	stream := make([]byte, 4<<20)
	for i := range stream {
		stream[i] = byte(rng.Uint32())
	}
	b := newInbuf(&trickle{data: stream, rng: rng})
	return &inbufModel{t: t, seed: seed, rng: rng, stream: stream, b: b, seen: map[*inchunk]bool{b.cur: true}}
}

// check fails the test unless got is the stream's next bytes.
func (m *inbufModel) check(what string, got []byte) {
	m.t.Helper()
	if !bytes.Equal(got, m.stream[m.pos:m.pos+len(got)]) {
		m.t.Fatalf("seed %d: %s at %d: wrong bytes", m.seed, what, m.pos)
	}
}

// step does one random Peek and Discard, Read or Take.
func (m *inbufModel) step() {
	t, b, seed := m.t, m.b, m.seed
	n := 1 + m.rng.IntN(maxTake)
	switch op := m.rng.IntN(10); {
	case op < 3:
		p, err := b.Peek(n)
		if err != nil || len(p) != n {
			t.Fatalf("seed %d: Peek(%d) = %d bytes, %v", seed, n, len(p), err)
		}
		m.check("Peek", p)
		k := m.rng.IntN(n + 1)
		b.Discard(k)
		m.pos += k
	case op < 6:
		p := make([]byte, m.rng.IntN(2*inbufSize))
		got, err := io.ReadFull(b, p)
		if err != nil {
			t.Fatalf("seed %d: ReadFull(%d) = %d, %v", seed, len(p), got, err)
		}
		m.check("Read", p)
		m.pos += len(p)
	default:
		p, ch, err := b.Take(n)
		if err != nil || len(p) != n || cap(p) != n {
			t.Fatalf("seed %d: Take(%d) = %d bytes (cap %d), %v", seed, n, len(p), cap(p), err)
		}
		m.check("Take", p)
		m.seen[ch] = true
		m.held = append(m.held, takenSlice{p, m.pos, ch})
		m.pos += n
	}
}

// unpin checks that the i'th slice held still has its bytes, and unpins it.
func (m *inbufModel) unpin(i int) {
	h := m.held[i]
	if !bytes.Equal(h.p, m.stream[h.off:h.off+len(h.p)]) {
		m.t.Fatalf("seed %d: taken slice at %d changed before it was unpinned", m.seed, h.off)
	}
	h.ch.unpin()
	m.held = append(m.held[:i], m.held[i+1:]...)
}

// finish reads the rest of the stream, then EOF, and checks that every
// chunk's pins came back to zero.
func (m *inbufModel) finish() {
	t, b := m.t, m.b
	rest, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	m.check("ReadAll", rest)
	if _, err := b.Peek(1); !errors.Is(err, io.EOF) {
		t.Fatalf("seed %d: Peek at the end: %v, want EOF", m.seed, err)
	}
	b.release()
	for ch := range m.seen {
		if p := ch.pins.Load(); p != 0 {
			t.Fatalf("seed %d: a chunk still has %d pins", m.seed, p)
		}
	}
}

// TestInbufStrandedBound: a chunk the buffer moves on from while a Take's
// payload still pins it counts as stranded until its last pin drops, and
// past maxStranded of them MayTake says no (readPayload then copies the
// payload out), so that pinned payloads of a few bytes cannot hold a
// chunk each. A chunk no one else holds is reused in place, not counted.
func TestInbufStrandedBound(t *testing.T) {
	b := newInbuf(&readSizes{})
	defer b.release()
	var held []*inchunk
	for i := range maxStranded + 2 {
		if b.MayTake() != (i < maxStranded) {
			t.Fatalf("%d chunks stranded: MayTake %v", i, b.MayTake())
		}
		_, ch, err := b.Take(1) // a one-byte payload whose write waits
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ch)
		if _, err := b.Peek(inbufSize); err != nil { // a chunk's worth of requests after it
			t.Fatal(err)
		}
		if got := int(b.stranded.Load()); got != i+1 {
			t.Fatalf("after %d pinned chunks moved on from: %d stranded", i+1, got)
		}
	}
	if b.MayTake() {
		t.Fatalf("%d chunks stranded and MayTake still says yes", b.stranded.Load())
	}
	for _, ch := range held {
		ch.unpin()
	}
	if n := b.stranded.Load(); n != 0 || !b.MayTake() {
		t.Fatalf("every pin dropped: %d stranded, MayTake %v", n, b.MayTake())
	}
	// A Take whose pin drops before the buffer needs room: the chunk is
	// reused in place, and nothing is stranded.
	_, ch, err := b.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	ch.unpin()
	if _, err := b.Peek(inbufSize); err != nil {
		t.Fatal(err)
	}
	if n := b.stranded.Load(); n != 0 {
		t.Fatalf("a chunk no payload held counted stranded (%d)", n)
	}
}
