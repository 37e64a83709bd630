package nbdserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testkit.NeedTool(t, name), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func uri(sock, name string) string { return "nbd+unix:///" + name + "?socket=" + sock }

func TestNbdinfo(t *testing.T) {
	m := newMem(16 << 20)
	m.holes[0] = true
	_, sock := startServer(t, testExports{"disk": m}, nil)
	var info struct {
		Exports []struct {
			Name        string   `json:"export-name"`
			Size        int64    `json:"export-size"`
			Contexts    []string `json:"contexts"`
			CanFlush    bool     `json:"can_flush"`
			CanFUA      bool     `json:"can_fua"`
			CanTrim     bool     `json:"can_trim"`
			CanZero     bool     `json:"can_zero"`
			CanFastZero bool     `json:"can_fast_zero"`
			CanMulti    bool     `json:"can_multi_conn"`
			CanDF       bool     `json:"can_df"`
			ReadOnly    bool     `json:"is_read_only"`
			MaxBlock    int64    `json:"block_size_maximum"`
		} `json:"exports"`
		Structured bool `json:"structured"`
	}
	out := run(t, "nbdinfo", "--json", uri(sock, "disk"))
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e := info.Exports[0]
	if e.Name != "disk" || e.Size != 16<<20 || !e.CanFlush || !e.CanFUA || !e.CanTrim || !e.CanZero ||
		!e.CanFastZero || !e.CanMulti || !e.CanDF || e.ReadOnly || e.MaxBlock != 32<<20 || !info.Structured {
		t.Fatalf("nbdinfo --json:\n%s", out)
	}
	if len(e.Contexts) != 1 || e.Contexts[0] != "base:allocation" {
		t.Fatalf("contexts %v", e.Contexts)
	}
	mapOut := run(t, "nbdinfo", "--map", uri(sock, "disk"))
	lines := strings.Split(strings.TrimSpace(mapOut), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "4096") || !strings.Contains(lines[0], "hole,zero") ||
		!strings.Contains(lines[1], "data") {
		t.Fatalf("nbdinfo --map:\n%s", mapOut)
	}
	list := run(t, "nbdinfo", "--list", "--json", uri(sock, ""))
	if !strings.Contains(list, `"disk"`) {
		t.Fatalf("nbdinfo --list: %s", list)
	}
}

func TestQemuIOPatterns(t *testing.T) {
	_, sock := startServer(t, testExports{"disk": newMem(16 << 20)}, nil)
	u := uri(sock, "disk")
	out := run(t, "qemu-io", "-f", "raw",
		"-c", "write -P 0xab 0 1M",
		"-c", "write -P 0xcd 1536k 512",
		"-c", "write -z 8M 1M",
		"-c", "discard 12M 64k",
		"-c", "flush",
		"-c", "read -P 0xab 0 1M",
		"-c", "read -P 0xcd 1536k 512",
		"-c", "read -P 0 8M 1M",
		"-c", "aio_write -P 0x11 2M 64k",
		"-c", "aio_write -P 0x22 3M 64k",
		"-c", "aio_flush",
		"-c", "read -P 0x11 2M 64k",
		"-c", "read -P 0x22 3M 64k",
		u)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io:\n%s", out)
	}
	if n := strings.Count(out, "read "); n < 5 {
		t.Fatalf("qemu-io ran %d reads:\n%s", n, out)
	}
}

func TestNbdcopyAndQemuImgCompare(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.img")
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7 / 4096)
	}
	clear(data[2<<20 : 3<<20]) // a zero run
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m := newMem(8 << 20)
	_, sock := startServer(t, testExports{"disk": m}, nil)
	run(t, "nbdcopy", src, uri(sock, "disk"))
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, uri(sock, "disk"))
	back := filepath.Join(t.TempDir(), "back.img")
	run(t, "nbdcopy", uri(sock, "disk"), back)
	got, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip through nbdcopy differs (%v)", err)
	}
}

// fio's verifying random writes from 4 connections at depth 32, over a
// UNIX socket and over loopback TCP; and from one connection over TCP, where
// the reader spins (see spinWindow; with 4 connections it does not).
func TestFioVerify(t *testing.T) {
	for _, tc := range []struct {
		network string
		jobs    int
	}{{"unix", 4}, {"tcp", 4}, {"tcp", 1}} {
		network := tc.network
		t.Run(fmt.Sprintf("%s/%d-conns", network, tc.jobs), func(t *testing.T) {
			var pin func(*Server)
			if network == "tcp" && tc.jobs == 1 {
				// The reader spins only while it serves its
				// batches itself, which on TCP the tuner leaves
				// off at the start and may or may not probe into.
				pin = func(s *Server) { s.pinned = new(uint8(knobReaderServes | knobSpin)) }
			}
			s, addr := startServerOn(t, network, testExports{"disk": newMem(64 << 20)}, pin)
			u := uri(addr, "disk")
			if network == "tcp" {
				u = "nbd://" + addr + "/disk"
			}
			out := run(t, "fio", "--name=verify", "--ioengine=nbd", "--uri="+u,
				"--rw=randwrite", "--bs=4k", "--bsrange=512-64k", "--size=64m", fmt.Sprintf("--numjobs=%d", tc.jobs), "--iodepth=32",
				"--offset_increment=16m", "--size=16m", "--verify=crc32c", "--do_verify=1", "--verify_state_save=0",
				"--group_reporting", "--output-format=json")
			if n := testkit.FioErrors(t, out); n != 0 {
				t.Fatalf("fio: %d errors\n%s", n, out)
			}
			testkit.WaitFor(t, 10*time.Second, "every connection out of transmission", func() bool { return s.transmitting.Load() == 0 })
			// The one TCP connection's reader spins: hundreds of spins
			// in a plain run. Under the race detector requests are
			// slower, and it spins only while its service time is
			// unknown (the first wait) or below readerServesMax.
			if network == "tcp" && tc.jobs == 1 {
				if st := s.Stats(); st.SpinsFound.Load()+st.SpinsParked.Load() == 0 {
					t.Fatal("the reader never spun")
				}
			}
		})
	}
}
