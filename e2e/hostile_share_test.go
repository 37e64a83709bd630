package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Clients piling writes onto a suspended device hold at most that device's
// share of the bytes in flight (--nbd-max-inflight-bytes-per-device,
// default half of --nbd-max-inflight-bytes): another device keeps serving
// reads and writes on its own connection, and once the suspended device
// resumes, every write it held completes. (Before the share, the suspended
// device's writes took the whole bound and device b's first request waited
// for the resume.)
func TestHostileShareSuspendedDevice(t *testing.T) {
	const (
		bound   = 64 << 20
		share   = bound / 2
		clients = 5
		writes  = 24 // of 1 MiB per client: 120 MiB for a, near twice the bound
		mib     = 1 << 20
	)
	d := startDaemon(t, "", "--nbd-max-inflight-bytes", strconv.Itoa(bound))
	hostileDevice(t, d, "a")
	hostileDevice(t, d, "b")
	d.gdm("suspend", "a")

	var conns []*net.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sent := make(chan error, clients)
	for i := range clients {
		c := dialNBD(t, d, "a")
		conns = append(conns, c)
		var reqs []byte
		for j := range writes {
			reqs = append(reqs, nbdRequest(nbdCmdWrite, uint64(j), uint64((i*writes+j)%64)*mib, mib)...)
			reqs = append(reqs, bytes.Repeat([]byte{byte(i)}, mib)...)
		}
		// Whole requests, payload and all; the daemon stops reading them
		// once a's bytes in flight reach their bound, and this waits.
		go func() {
			_, err := c.Write(reqs)
			sent <- err
		}()
	}
	waits := func() float64 {
		return max(0, metric(t, d, "gdm_nbd_inflight_waits_total")) + max(0, metric(t, d, "gdm_nbd_inflight_device_waits_total"))
	}
	testkit.WaitForValue(t, 30*time.Second, "a's writes to reach a bound on bytes in flight", func() (bool, string) {
		return waits() > 0, fmt.Sprintf("%v bytes in flight", metric(t, d, "gdm_nbd_inflight_bytes"))
	})
	if n := metric(t, d, "gdm_nbd_inflight_bytes"); n > share {
		t.Errorf("suspended device a holds %v bytes in flight, more than its share, %d", n, share)
	}

	// Device b, on its own connection, while a's writers wait: each
	// request must complete (30 s is a liveness bound, not a speed test).
	b := dialNBD(t, d, "b")
	defer b.Close()
	for k := range 4 {
		data := bytes.Repeat([]byte{0xb0 + byte(k)}, mib)
		b.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := b.Write(append(nbdRequest(nbdCmdWrite, uint64(k), uint64(k)*mib, mib), data...)); err != nil {
			t.Fatalf("device b's write %d: %v", k, err)
		}
		if err := nbdReply(b, uint64(k), nil); err != nil {
			t.Fatalf("device b's write %d, while a is suspended: %v\ndaemon log: %s", k, err, d.log)
		}
		if _, err := b.Write(nbdRequest(nbdCmdRead, uint64(100+k), uint64(k)*mib, mib)); err != nil {
			t.Fatalf("device b's read %d: %v", k, err)
		}
		got := make([]byte, mib)
		if err := nbdReply(b, uint64(100+k), got); err != nil {
			t.Fatalf("device b's read %d, while a is suspended: %v\ndaemon log: %s", k, err, d.log)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("device b's read %d: not the data written", k)
		}
	}
	b.SetDeadline(time.Time{})
	if n := metric(t, d, "gdm_nbd_inflight_waits_total"); n != 0 {
		t.Errorf("%v waits for the bound across devices: a should have stayed within its share", n)
	}

	d.gdm("resume", "a")
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for range writes {
			var rep [16]byte
			if _, err := io.ReadFull(c, rep[:]); err != nil {
				t.Fatalf("client %d of a, after resume: %v", i, err)
			}
			if e := binary.BigEndian.Uint32(rep[4:]); e != 0 {
				t.Fatalf("client %d of a, after resume: a write failed with error %d", i, e)
			}
		}
	}
	for range clients {
		if err := <-sent; err != nil {
			t.Fatalf("sending a's writes: %v", err)
		}
	}
	testkit.WaitForValue(t, 30*time.Second, "no bytes left in flight", func() (bool, string) {
		n := metric(t, d, "gdm_nbd_inflight_bytes")
		return n == 0, fmt.Sprint(n)
	})
}

// nbdReply reads one simple reply to cookie off c, and its data into data
// when the reply carries some (a read's).
func nbdReply(c net.Conn, cookie uint64, data []byte) error {
	var rep [16]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return err
	}
	if e, ck := binary.BigEndian.Uint32(rep[4:]), binary.BigEndian.Uint64(rep[8:]); e != 0 || ck != cookie {
		return fmt.Errorf("reply: error %d, cookie %d (want %d)", e, ck, cookie)
	}
	_, err := io.ReadFull(c, data)
	return err
}
