package nbdserver

import (
	"context"
	"encoding/binary"
	"testing"
)

// A block-status request over a range of many same-kind runs (a striped
// device's chunks) stops after maxExtentWalk runs and answers for the part
// walked, with or without REQ_ONE: a request cannot make the server walk
// an unbounded range for one descriptor.
func TestBlockStatusWalkBounded(t *testing.T) {
	const runs = 2 * maxExtentWalk // memExport reports one run per 4 KiB
	_, sock := startServer(t, testExports{"a": newMem(runs * 4096)}, nil)
	c := dial(t, sock)
	c.connect("a", true)
	for i, flags := range []uint16{0, cmdFlagReqOne} {
		c.request(cmdBlockStatus, flags, uint64(i), 0, runs*4096, nil)
		ch := c.chunk()
		if ch.typ != chunkBlockStatus || len(ch.payload) != 12 {
			t.Fatalf("flags %#x: block status chunk type %d, payload % x", flags, ch.typ, ch.payload)
		}
		if got := binary.BigEndian.Uint32(ch.payload[4:]); got != maxExtentWalk*4096 {
			t.Errorf("flags %#x: one descriptor of %d bytes for a %d-byte request, want the %d walked",
				flags, got, runs*4096, maxExtentWalk*4096)
		}
	}
}

// A meta context set for one export is not usable with another (proto.md):
// after SET_META_CONTEXT for "a" and GO to "b", BLOCK_STATUS is refused
// (EINVAL); set for "b" itself, it is answered.
func TestMetaContextIsForItsExport(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(8192), "b": newMem(8192)}, nil)
	for _, setFor := range []string{"a", "b"} {
		c := dial(t, sock)
		c.hello(clientFixedNewstyle | clientNoZeroes)
		c.opt(optStructuredReply, nil)
		c.optReply(optStructuredReply)
		c.opt(optSetMetaContext, metaData(setFor, metaBaseAllocation))
		c.optReply(optSetMetaContext) // the context
		c.optReply(optSetMetaContext) // the ack
		c.goExport("b")
		c.request(cmdBlockStatus, 0, 1, 0, 4096, nil)
		ch := c.chunk()
		refused := ch.typ == chunkError && binary.BigEndian.Uint32(ch.payload) == errInval
		if want := setFor != "b"; refused != want {
			t.Errorf("context set for %q, GO to b: BLOCK_STATUS chunk type %d (refused %v, want %v)", setFor, ch.typ, refused, want)
		}
	}
}

// SET_META_CONTEXT replaces the contexts set before it even when it fails
// (proto.md: "including when this command fails"): after a good SET for
// "a", a second SET that fails (truncated, or for an unknown export) leaves
// no context, and BLOCK_STATUS after GO to "a" is refused with EINVAL.
func TestFailedSetMetaContextClears(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(8192)}, nil)
	for _, tc := range []struct {
		name string
		data []byte
		want uint32
	}{
		{"truncated", []byte{0, 0, 0, 1, 'a', 0, 0, 0, 2, 0, 0, 0, 9}, repErrInvalid},
		{"unknown export", metaData("zz", metaBaseAllocation), repErrUnknown},
	} {
		c := dial(t, sock)
		c.hello(clientFixedNewstyle | clientNoZeroes)
		c.opt(optStructuredReply, nil)
		c.optReply(optStructuredReply)
		c.opt(optSetMetaContext, metaData("a", metaBaseAllocation))
		c.optReply(optSetMetaContext) // the context
		c.optReply(optSetMetaContext) // the ack
		c.opt(optSetMetaContext, tc.data)
		if typ, _ := c.optReply(optSetMetaContext); typ != tc.want {
			t.Fatalf("%s: second SET answered %#x, want %#x", tc.name, typ, tc.want)
		}
		c.goExport("a")
		c.request(cmdBlockStatus, 0, 2, 0, 4096, nil)
		ch := c.chunk()
		if ch.typ != chunkError || binary.BigEndian.Uint32(ch.payload) != errInval {
			t.Errorf("%s: BLOCK_STATUS after a failed SET: chunk type %d % x, want EINVAL", tc.name, ch.typ, ch.payload)
		}
	}
}

// overshoot is an export that does not cut its runs to the range asked:
// it reports the rest of the export from off as one run of data.
type overshoot struct{ *memExport }

func (o overshoot) Extents(_ context.Context, off, _ int64, emit func(int64, uint32) bool) error {
	emit(o.Size()-off, 0)
	return nil
}

// With REQ_ONE the one descriptor "MUST NOT exceed the length of the
// original request" (proto.md), even from an export whose run goes on
// past it: the server cuts it to the request.
func TestBlockStatusReqOneWithinRequest(t *testing.T) {
	m := newMem(1 << 20)
	m.as = overshoot{m}
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", true)
	c.request(cmdBlockStatus, cmdFlagReqOne, 1, 8192, 4096, nil)
	ch := c.chunk()
	if ch.typ != chunkBlockStatus || len(ch.payload) != 12 {
		t.Fatalf("block status chunk type %d, payload % x", ch.typ, ch.payload)
	}
	if got := binary.BigEndian.Uint32(ch.payload[4:]); got != 4096 {
		t.Errorf("REQ_ONE descriptor of %d bytes for a 4096-byte request", got)
	}
}
