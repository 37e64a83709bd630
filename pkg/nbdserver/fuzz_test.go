package nbdserver

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// runRaw feeds a raw client byte stream to one server connection over a
// socket pair and waits for the server to finish with it. The server must
// neither panic (even a panic it recovers from) nor hang, whatever the
// bytes.
func runRaw(t *testing.T, input []byte) *Server {
	srv := &Server{
		Exports:          testExports{"a": newMem(64 << 10)},
		Log:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		HandshakeTimeout: 2 * time.Second,
	}
	server, client := socketPair(t)
	c := newConn(srv, server)
	go io.Copy(io.Discard, client) // the replies
	go func() {
		client.Write(input)
		// EOF once the server has read it all; unlike a close, this lets
		// the server's replies (the handshake's too) still go out.
		client.CloseWrite()
	}()
	done := make(chan struct{})
	go func() {
		c.serve()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not finish with input % x", input)
	}
	// The connection recovers a panic and ends (the daemon lives on): the
	// counters are where one shows.
	if p, cp := srv.stats.Panics.Load(), srv.stats.ConnPanics.Load(); p != 0 || cp != 0 {
		t.Fatalf("%d panics in requests, %d on the connection, with input % x", p, cp, input)
	}
	return srv
}

// socketPair returns both ends of a connected UNIX stream socket pair.
func socketPair(t *testing.T) (server, client *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func optBytes(typ uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, magicOption)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func reqBytes(typ, flags uint16, off uint64, length uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicRequest)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.BigEndian.AppendUint64(b, off)
	return binary.BigEndian.AppendUint32(b, length)
}

// goPrefix is a whole valid handshake: flags, structured replies,
// base:allocation, GO "a".
func goPrefix() []byte {
	b := binary.BigEndian.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes)
	b = append(b, optBytes(optStructuredReply, nil)...)
	b = append(b, optBytes(optSetMetaContext, metaData("a", metaBaseAllocation))...)
	return append(b, optBytes(optGo, infoData("a", infoBlockSize))...)
}

func FuzzHandshake(f *testing.F) {
	flags := binary.BigEndian.AppendUint32(nil, clientFixedNewstyle)
	f.Add(goPrefix())
	f.Add(append(flags, optBytes(optList, nil)...))
	f.Add(append(flags, optBytes(optInfo, infoData("a", 0, 1, 2, 3))...))
	f.Add(append(flags, optBytes(optListMetaContext, metaData("a", "base:"))...))
	f.Add(append(flags, optBytes(optExportName, []byte("a"))...))
	f.Add(append(flags, optBytes(optAbort, nil)...))
	f.Add(append(flags, optBytes(optInfo, []byte{0, 0, 0, 200, 1})...))
	f.Fuzz(func(t *testing.T, input []byte) { runRaw(t, input) })
}

func FuzzRequests(f *testing.F) {
	f.Add(reqBytes(cmdRead, 0, 0, 4096))
	f.Add(append(reqBytes(cmdWrite, cmdFlagFUA, 512, 4), 1, 2, 3, 4))
	f.Add(reqBytes(cmdBlockStatus, cmdFlagReqOne, 0, 65536))
	f.Add(reqBytes(cmdWriteZeroes, cmdFlagNoHole|cmdFlagFastZero, 0, 8192))
	f.Add(reqBytes(cmdRead, cmdFlagDF, 1<<63, 1<<31))
	f.Add(append(reqBytes(cmdFlush, 0, 0, 0), reqBytes(cmdDisc, 0, 0, 0)...))
	f.Fuzz(func(t *testing.T, input []byte) {
		srv := runRaw(t, append(goPrefix(), input...))
		// A valid handshake: the requests, whatever they are, were served.
		for i := range srv.stats.HandshakeFailed {
			if n := srv.stats.HandshakeFailed[i].Load(); n != 0 {
				t.Fatalf("the handshake failed (%s): the requests were never read", HandshakeFailureNames[i])
			}
		}
	})
}
