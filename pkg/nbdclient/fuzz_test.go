package nbdclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeSize is the export size the fake server announces.
const fakeSize = 1 << 20

// fakeHandshake plays a fixed newstyle server that agrees to structured
// replies, base:allocation (id 1) and NBD_OPT_GO, on the server end of a
// pipe.
func fakeHandshake(c net.Conn) error {
	return fakeHandshakeFlags(c, FlagHasFlags|FlagSendDF|FlagSendFlush)
}

// fakeHandshakeFlags is fakeHandshake announcing transmission flags
// tflags (without FlagSendDF: a server that may split reads into chunks).
func fakeHandshakeFlags(c net.Conn, tflags uint16) error {
	return fakeHandshakeInfo(c, tflags, nil)
}

// fakeHandshakeInfo is fakeHandshakeFlags sending the NBD_REP_INFO
// payloads infos too, after NBD_INFO_EXPORT.
func fakeHandshakeInfo(c net.Conn, tflags uint16, infos [][]byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicNBD)
	b = binary.BigEndian.AppendUint64(b, magicOption)
	b = binary.BigEndian.AppendUint16(b, hsFixedNewstyle|hsNoZeroes)
	if _, err := c.Write(b); err != nil {
		return err
	}
	var flags [4]byte
	if _, err := io.ReadFull(c, flags[:]); err != nil {
		return err
	}
	for {
		var h [16]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return err
		}
		opt := binary.BigEndian.Uint32(h[8:])
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(h[12:]))); err != nil {
			return err
		}
		switch opt {
		case optSetMetaContext:
			optReply(c, opt, repMetaContext, append([]byte{0, 0, 0, 1}, metaBaseAllocation...))
		case optGo:
			info := binary.BigEndian.AppendUint16(nil, infoExport)
			info = binary.BigEndian.AppendUint64(info, fakeSize)
			info = binary.BigEndian.AppendUint16(info, tflags)
			optReply(c, opt, repInfo, info)
			for _, i := range infos {
				optReply(c, opt, repInfo, i)
			}
		}
		if err := optReply(c, opt, repAck, nil); err != nil || opt == optGo {
			return err
		}
	}
}

func optReply(c net.Conn, opt, typ uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicOptReply)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := c.Write(append(b, data...))
	return err
}

// chunk builds a structured reply chunk.
func chunkBytes(flags, typ uint16, cookie uint64, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicStructure)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// fuzzSeeds are well-formed and subtly wrong replies to a 4 KiB read at
// 4096 (cookie rc) and a block status (cookie sc).
func fuzzSeeds(rc, sc uint64) [][]byte {
	data := binary.BigEndian.AppendUint64(nil, 4096)
	data = append(data, bytes.Repeat([]byte{7}, 4096)...)
	hole := binary.BigEndian.AppendUint64(nil, 4096)
	hole = binary.BigEndian.AppendUint32(hole, 4096)
	status := []byte{0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 3}
	errc := []byte{0, 0, 0, 5, 0, 3, 'b', 'a', 'd'}
	simple := binary.BigEndian.AppendUint32(nil, magicSimple)
	simple = binary.BigEndian.AppendUint32(simple, 0)
	return [][]byte{
		append(chunkBytes(1, chunkOffsetData, rc, data), chunkBytes(1, chunkBlockStatus, sc, status)...),
		append(chunkBytes(1, chunkBlockStatus, sc, status), chunkBytes(1, chunkOffsetHole, rc, hole)...),
		append(chunkBytes(0, chunkError, rc, errc), chunkBytes(1, chunkNone, rc, nil)...),
		chunkBytes(1, chunkOffsetData, rc, data[:100]),
		binary.BigEndian.AppendUint64(simple, rc),
		chunkBytes(1, chunkOffsetData, rc, append(binary.BigEndian.AppendUint64(nil, 8000), data[8:]...)),
	}
}

// FuzzReplies feeds a client whatever bytes a server may send after the
// handshake, while it waits for a read and a block status. The client must
// not panic, must not write outside the read's buffer, and both calls must
// return once the stream ends.
func FuzzReplies(f *testing.F) {
	for _, s := range fuzzSeeds(1, 2) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, replies []byte) {
		fuzzReplies(t, replies, FlagHasFlags|FlagSendDF|FlagSendFlush)
	})
}

// FuzzRepliesFragmented is FuzzReplies with a server that does not offer
// DF: the client's read may come in many chunks, which it must put
// together without overlaps (claim).
func FuzzRepliesFragmented(f *testing.F) {
	for _, s := range fuzzSeeds(1, 2) {
		f.Add(s)
	}
	half := binary.BigEndian.AppendUint64(nil, 4096)
	half = append(half, bytes.Repeat([]byte{7}, 2048)...)
	hole := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 4096+2048), 2048)
	f.Add(append(chunkBytes(0, chunkOffsetHole, 1, hole), chunkBytes(1, chunkOffsetData, 1, half)...))
	f.Add(append(chunkBytes(0, chunkOffsetData, 1, half), chunkBytes(1, chunkOffsetData, 1, half)...))
	f.Fuzz(func(t *testing.T, replies []byte) {
		fuzzReplies(t, replies, FlagHasFlags|FlagSendFlush)
	})
}

// fuzzReplies is one run of the reply fuzzers, with a server announcing
// tflags.
func fuzzReplies(t *testing.T, replies []byte, tflags uint16) {
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		if fakeHandshakeFlags(srv, tflags) != nil {
			return
		}
		go io.Copy(io.Discard, srv) // the requests
		srv.Write(replies)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	guarded := bytes.Repeat([]byte{0xAA}, 3*4096)
	var wg sync.WaitGroup
	wg.Go(func() { cl.ReadAt(ctx, guarded[4096:8192], 4096) })
	wg.Go(func() { cl.Extents(ctx, 0, fakeSize, func(Extent) bool { return true }) })
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("a call hung until the test's deadline")
	}
	if !bytes.Equal(guarded[:4096], bytes.Repeat([]byte{0xAA}, 4096)) || !bytes.Equal(guarded[8192:], bytes.Repeat([]byte{0xAA}, 4096)) {
		t.Fatal("the client wrote outside the read's buffer")
	}
}

// TestBadReplies checks the seeds' verdicts, so that the fuzz target's
// parsing is seen to tell good replies from bad. Its fake server reads the
// two requests first, to answer each by its cookie.
func TestBadReplies(t *testing.T) {
	for i, wantErr := range []bool{false, false, true, true, true, true} {
		cli, srv := net.Pipe()
		go func() {
			defer srv.Close()
			if fakeHandshake(srv) != nil {
				return
			}
			var rc, sc uint64
			for range 2 {
				var h [requestSize]byte
				if _, err := io.ReadFull(srv, h[:]); err != nil {
					return
				}
				if binary.BigEndian.Uint16(h[6:]) == cmdRead {
					rc = binary.BigEndian.Uint64(h[8:])
				} else {
					sc = binary.BigEndian.Uint64(h[8:])
				}
			}
			go io.Copy(io.Discard, srv)
			srv.Write(fuzzSeeds(rc, sc)[i])
		}()
		cl, err := Dial(testCtx(t), Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }, MaxConns: 1, BackoffMin: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var rerr, serr error
		var wg sync.WaitGroup
		wg.Go(func() { rerr = cl.ReadAt(testCtx(t), make([]byte, 4096), 4096) })
		wg.Go(func() { serr = cl.Extents(testCtx(t), 0, 4096, func(Extent) bool { return true }) })
		wg.Wait()
		cl.Close()
		if got := rerr != nil || (i < 2 && serr != nil); got != wantErr {
			t.Errorf("seed %d: read %v, status %v; want an error: %v", i, rerr, serr, wantErr)
		}
		var re *RemoteError
		if wantErr && !errors.Is(rerr, ErrDown) && !errors.As(rerr, &re) {
			t.Errorf("seed %d: read error %v is neither a remote error nor a lost connection", i, rerr)
		}
	}
}

// FuzzHandshake feeds a client's handshake whatever a server may send from
// its first byte: Dial must return, with an export or an error, and never
// panic or allocate past the option reply bound.
func FuzzHandshake(f *testing.F) {
	cli, srv := net.Pipe()
	var rec bytes.Buffer
	go func() {
		defer srv.Close()
		fakeHandshake(recorder{srv, &rec})
	}()
	if cl, err := Dial(context.Background(), Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }}); err == nil {
		cl.Close()
	}
	f.Add(rec.Bytes()) // a whole good handshake, as the fake server sent it
	f.Add(rec.Bytes()[:30])
	f.Fuzz(func(t *testing.T, greeting []byte) {
		cli, srv := net.Pipe()
		go func() {
			defer srv.Close()
			go io.Copy(io.Discard, srv)
			srv.Write(greeting)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := Dial(ctx, Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }, MaxConns: 1})
		if err == nil {
			cl.Close()
		}
		if ctx.Err() != nil {
			t.Fatal("the handshake hung until the test's deadline")
		}
	})
}

// recorder is a net.Conn that keeps a copy of what is written to it.
type recorder struct {
	net.Conn
	w *bytes.Buffer
}

func (r recorder) Write(p []byte) (int, error) { r.w.Write(p); return r.Conn.Write(p) }
