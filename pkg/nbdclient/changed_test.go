package nbdclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedialFeaturesLost: the client chooses each request's flags from
// what its first connection was offered (DF, FUA, WRITE_ZEROES...). A
// server that comes back without some of them (restarted older, or with
// another configuration) must not be sent them: the spec forbids a
// client to set a flag the server did not advertise, and such a server
// answers EINVAL to every such request for as long as the table lives. A
// redial that finds a feature gone is refused as ErrExportChanged, as one
// finding another size is, and nothing but a hang-up is sent to it.
func TestRedialFeaturesLost(t *testing.T) {
	full := FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendDF | FlagWriteZeroes
	for name, second := range map[string]uint16{
		"no FUA":          full &^ FlagSendFUA,
		"no DF":           full &^ FlagSendDF,
		"no WRITE_ZEROES": full &^ FlagWriteZeroes,
	} {
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int32
			var mu sync.Mutex
			var sent []string // requests the second connection got
			path := serveUnix(t, func(c net.Conn) {
				first := conns.Add(1) == 1
				flags := full
				if !first {
					flags = second
				}
				if fakeHandshakeFlags(c, flags) != nil {
					return
				}
				for {
					var h [requestSize]byte
					if _, err := io.ReadFull(c, h[:]); err != nil {
						return
					}
					typ, cookie := binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:])
					off, n := binary.BigEndian.Uint64(h[16:]), binary.BigEndian.Uint32(h[24:])
					if !first && typ != cmdDisc { // a hang-up is fine
						mu.Lock()
						sent = append(sent, fmt.Sprintf("type %d flags %#x", typ, binary.BigEndian.Uint16(h[4:])))
						mu.Unlock()
					}
					var reply []byte
					switch typ {
					case cmdRead:
						reply = holeChunk(chunkFlagDone, cookie, off, n)
					case cmdWrite:
						io.CopyN(io.Discard, c, int64(n))
						fallthrough
					default:
						reply = simpleReplyBytes(0, cookie)
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			})
			cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx := testCtx(t)
			cl.conns[0].kill(ErrDisconnected)
			var errs []error
			for range 3 { // the revive's dial, or theirs, finds the server changed
				errs = append(errs, cl.ReadAt(ctx, make([]byte, 512), 0),
					cl.WriteAt(ctx, make([]byte, 512), 0, true),
					cl.Zero(ctx, 0, 512, false, false))
			}
			changed := false
			for _, err := range errs {
				if err == nil {
					t.Fatalf("a request succeeded on a server that came back with %s: %v", name, errs)
				}
				changed = changed || errors.Is(err, ErrExportChanged)
			}
			mu.Lock()
			defer mu.Unlock()
			if !changed || len(sent) > 0 {
				t.Fatalf("after the server came back with %s: %v; it was sent %v", name, errs, sent)
			}
		})
	}
}
