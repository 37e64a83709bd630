package nbdserver

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkRequests measures the server's request path (reading turn,
// budgets, reply writer) with a client that keeps 16 requests in flight on
// one connection.
func BenchmarkRequests(b *testing.B) {
	for _, network := range []string{"unix", "tcp"} {
		for _, op := range []string{"read", "write"} {
			for _, size := range []int{4 << 10, 1 << 20} {
				b.Run(fmt.Sprintf("net=%s/op=%s/size=%dK", network, op, size>>10), func(b *testing.B) {
					benchRequests(b, network, op, size, 16)
				})
			}
		}
	}
}

func benchRequests(b *testing.B, network, op string, size, depth int) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(b.TempDir(), "nbd.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Exports: testExports{"a": newMem(64 << 20)}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go s.Serve(l)
	defer s.Close()
	nc, err := net.Dial(network, l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 1<<20)
	// Handshake: greeting, flags, EXPORT_NAME "a", size and flags back.
	hs := binary.BigEndian.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes)
	nc.Write(append(hs, optBytes(optExportName, []byte("a"))...))
	if _, err := io.ReadFull(br, make([]byte, 18+10)); err != nil {
		b.Fatal(err)
	}
	typ, payload, replyLen := uint16(cmdWrite), make([]byte, size), 16
	if op == "read" {
		typ, payload, replyLen = cmdRead, nil, 16+size
	}
	req := append(reqBytes(typ, 0, 0, uint32(size)), payload...)
	done := make(chan error, 1)
	credits := make(chan struct{}, depth)
	go func() {
		buf := make([]byte, replyLen)
		for range b.N {
			if _, err := io.ReadFull(br, buf); err != nil {
				done <- err
				return
			}
			<-credits
		}
		done <- nil
	}()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		credits <- struct{}{}
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
