package nbdclient

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestBlockStatusManyExtents: the spec lets a server send up to 2^20
// extents in one block status chunk (4 + 8*2^20 bytes), and nbdkit does
// (sparse-random over 1 GiB sends 2^18 in one chunk). The client must
// take such a reply, not refuse it as a protocol error and drop the
// connection under every request on it. Here every block status request
// is answered with all its 8-byte runs, data and hole in turn, in one
// chunk: 2^17 extents for the whole export.
func TestBlockStatusManyExtents(t *testing.T) {
	cl := pipeClient(t, Options{}, func(srv net.Conn) {
		if fakeHandshake(srv) != nil {
			return
		}
		for {
			var h [requestSize]byte
			if _, err := io.ReadFull(srv, h[:]); err != nil || binary.BigEndian.Uint16(h[6:]) != cmdBlockStatus {
				return
			}
			cookie, off := binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint64(h[16:])
			end := off + uint64(binary.BigEndian.Uint32(h[24:]))
			p := binary.BigEndian.AppendUint32(nil, 1) // base:allocation's id
			for pos := off; pos < end; pos += 8 {
				p = binary.BigEndian.AppendUint32(p, 8)
				p = binary.BigEndian.AppendUint32(p, uint32(pos/8%2)*3)
			}
			if _, err := srv.Write(chunkBytes(chunkFlagDone, chunkBlockStatus, cookie, p)); err != nil {
				return
			}
		}
	})
	var sum, runs, holes int64
	err := cl.Extents(testCtx(t), 0, fakeSize, func(e Extent) bool {
		sum, runs = sum+e.Length, runs+1
		if e.Flags == 3 {
			holes += e.Length
		}
		return true
	})
	if err != nil || sum != fakeSize || runs != fakeSize/8 || holes != fakeSize/2 {
		t.Fatalf("%d extents covering %d bytes, %d of them holes: %v", runs, sum, holes, err)
	}
}

// TestNbdkitFragmentedExtents: the same against nbdkit, whose
// sparse-random plugin answers block status over 512 MiB of 4 KiB runs
// with 2^17 extents in one chunk.
func TestNbdkitFragmentedExtents(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nbdkit.sock")
	nbdtest.StartTool(t, sock, "nbdkit", "-f", "-U", sock, "sparse-random", "size=512M", "percent=50", "runlength=4096")
	cl := dialUnix(t, sock, "")
	var sum int64
	err := cl.Extents(testCtx(t), 0, cl.Size(), func(e Extent) bool { sum += e.Length; return true })
	if err != nil || sum != cl.Size() {
		t.Fatalf("extents cover %d of %d bytes: %v", sum, cl.Size(), err)
	}
}
