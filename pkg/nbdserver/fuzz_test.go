package nbdserver

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// runRaw feeds a raw client byte stream to one server connection over a
// pipe and waits for the server to finish with it. The server must neither
// panic nor hang, whatever the bytes.
func runRaw(t *testing.T, input []byte) {
	srv := &Server{
		Exports:          testExports{"a": newMem(64 << 10)},
		Log:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		HandshakeTimeout: 2 * time.Second,
	}
	server, client := net.Pipe()
	c := newConn(srv, server)
	go io.Copy(io.Discard, client) // the replies
	go func() {
		client.Write(input)
		time.Sleep(time.Millisecond) // let the requests be read before EOF
		client.Close()
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
		runRaw(t, append(goPrefix(), input...))
	})
}
