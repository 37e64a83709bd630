package nbdserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	nbdclient "github.com/pojntfx/go-nbd/pkg/client"

	"github.com/gdm-project/gdm/internal/testkit"
)

// go-nbd's client.List sends client flags 0 (plain newstyle), then LIST, and
// expects the answer a fixed newstyle client gets. It needs no kernel.
func TestGoNBDList(t *testing.T) {
	_, sock := startServer(t, testExports{"disk": newMem(4096)}, nil)
	conn, names, err := goNBDList(t, sock)
	if err != nil || !slices.Equal(names, []string{"disk"}) {
		t.Fatalf("go-nbd List = %q, %v", names, err)
	}
	// List reads only the first reply and sends ABORT: what is left on the
	// wire is LIST's ACK, then ABORT's, then the end of the connection.
	rest, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, opt := range []uint32{optList, optAbort} {
		want = binary.BigEndian.AppendUint64(want, magicOptReply)
		want = binary.BigEndian.AppendUint32(want, opt)
		want = binary.BigEndian.AppendUint32(want, repAck)
		want = binary.BigEndian.AppendUint32(want, 0)
	}
	if !bytes.Equal(rest, want) {
		t.Fatalf("after List the server sent % x, want % x", rest, want)
	}
}

// go-nbd's List reads the names of every export out of one NBD_REP_SERVER
// reply (its own server packs them so); proto.md has one reply per export,
// which this server sends. With two exports List therefore sees one name.
// This pins that down, so that a change on either side is noticed.
func TestGoNBDListSeesFirstReplyOnly(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(512), "b": newMem(512)}, nil)
	_, names, err := goNBDList(t, sock)
	if err != nil || len(names) != 1 || (names[0] != "a" && names[0] != "b") {
		t.Fatalf("go-nbd List = %q, %v", names, err)
	}
}

// systemPython is the interpreter that has the distribution's libnbd
// binding (python3-libnbd); the python3 first on PATH may be another one.
const systemPython = "/usr/bin/python3"

// needPythonNBD returns systemPython once it can import nbd; otherwise the
// test is skipped loudly, or fails where GDM_REQUIRE_TOOLS is set.
func needPythonNBD(t *testing.T) string {
	t.Helper()
	py := testkit.NeedTool(t, systemPython)
	if out, err := exec.Command(py, "-c", "import nbd").CombinedOutput(); err != nil {
		testkit.SkipOrFail(t, "%s cannot import nbd (install python3-libnbd): %v\n%s", py, err, out)
	}
	return py
}

// libnbdPlain connects with the handshake flags argv[3] (fixed newstyle
// cleared), so libnbd ends the handshake with EXPORT_NAME and sends no other
// option; then it writes, reads back and reports.
const libnbdPlain = `
import json, sys, nbd
h = nbd.NBD()
h.set_handshake_flags(int(sys.argv[3]))
h.set_export_name(sys.argv[2])
h.connect_unix(sys.argv[1])
data = bytes((i * 7) % 251 for i in range(65536))
h.pwrite(data, 4096)
h.flush()
back = h.pread(len(data), 4096)
print(json.dumps({
    "protocol": h.get_protocol(),
    "handshake_flags": h.get_handshake_flags(),
    "size": h.get_size(),
    "structured": h.get_structured_replies_negotiated(),
    "same": back == data,
}))
h.shutdown()
`

func TestLibnbdPlainNewstyle(t *testing.T) {
	py := needPythonNBD(t)
	for _, tc := range []struct {
		name  string
		flags int // libnbd's handshake flags: 1 fixed newstyle, 2 no zeroes
	}{{"no_flags", 0}, {"no_zeroes", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem(1 << 20)
			s, sock := startServer(t, testExports{"disk": m, "other": newMem(512)}, nil)
			cmd := exec.Command(py, "-c", libnbdPlain, sock, "disk", strconv.Itoa(tc.flags))
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("libnbd: %v\n%s%s", err, out.String(), errb.String())
			}
			var got struct {
				Protocol       string `json:"protocol"`
				HandshakeFlags int    `json:"handshake_flags"`
				Size           int64  `json:"size"`
				Structured     bool   `json:"structured"`
				Same           bool   `json:"same"`
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if got.Protocol != "newstyle" || got.HandshakeFlags != tc.flags || got.Size != 1<<20 || got.Structured || !got.Same {
				t.Fatalf("libnbd reports %+v", got)
			}
			// The write reached the export, and the handshake was
			// EXPORT_NAME alone.
			m.mu.RLock()
			landed := m.data[4096+65535] == byte(65535*7%251)
			m.mu.RUnlock()
			if !landed {
				t.Fatal("the written data is not in the export")
			}
			st := s.Stats()
			for typ := range st.Options {
				if n := st.Options[typ].Load(); (typ == int(optExportName)) != (n == 1) || n > 1 {
					t.Fatalf("option %s sent %d times", OptionName(typ), n)
				}
			}
		})
	}
}

// goNBDList runs go-nbd's client.List over a new connection to sock, and
// returns the connection (closed when the test ends) with List's answer.
func goNBDList(t *testing.T, sock string) (net.Conn, []string, error) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	names, err := nbdclient.List(conn)
	return conn, names, err
}
