package e2e

import (
	"encoding/binary"
	"net"
	"testing"
)

// A client that resets its TCP connection (SO_LINGER 0, then close) in
// any phase ends that connection only: the daemon lives, answers the
// control API and serves the next client, and gives back every fd and
// goroutine. (Before the fix, a reset crashed the daemon with "slice
// bounds out of range" in inbuf.Peek: spinReader handed on read(2)'s -1.)
func TestHostileReset(t *testing.T) {
	d := startDaemon(t, "")
	hostileDevice(t, d, "h")
	healthy(t, d, "h")
	base := measure(t, d)
	cases := []struct {
		name string
		act  func(t *testing.T) *net.TCPConn
	}{
		{"mid-handshake", func(t *testing.T) *net.TCPConn {
			c, err := net.Dial("tcp", d.tcp)
			if err != nil {
				t.Fatal(err)
			}
			if err := nbdGreeting(c); err != nil {
				t.Fatal(err)
			}
			c.Write(binary.BigEndian.AppendUint32(nil, nbdFlagFixed)) // flags, then no option
			return c.(*net.TCPConn)
		}},
		{"idle", func(t *testing.T) *net.TCPConn { return dialNBD(t, d, "h") }},
		{"mid-request", func(t *testing.T) *net.TCPConn {
			c := dialNBD(t, d, "h")
			c.Write(nbdRequest(nbdCmdWrite, 1, 0, 1<<20))
			c.Write(make([]byte, 512<<10)) // half the payload
			return c
		}},
		{"mid-reply", func(t *testing.T) *net.TCPConn {
			c := dialNBD(t, d, "h")
			c.Write(nbdRequest(nbdCmdRead, 1, 0, 32<<20))
			var head [16]byte
			c.Read(head[:]) // the reply has begun
			return c
		}},
		{"unread-replies", func(t *testing.T) *net.TCPConn {
			c := dialNBD(t, d, "h")
			var reqs []byte
			for i := range 200 {
				reqs = append(reqs, nbdRequest(nbdCmdRead, uint64(i), uint64(i%64)<<20, 1<<20)...)
			}
			c.Write(reqs)
			return c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 5 {
				reset(tc.act(t))
			}
			healthy(t, d, "h")
			backToBaseline(t, d, base)
		})
	}
}
