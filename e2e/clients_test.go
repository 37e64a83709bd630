package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The userspace clients (nbdinfo, nbdcopy, qemu-img, qemu-io, fio) against
// a linear device, a striped device over 4 files, and a device mixing
// linear, striped and zero targets; with the files served through the
// page cache (the default), and with O_DIRECT and AIO (--file-direct).
func TestUserspaceClients(t *testing.T) {
	t.Run("page-cache", func(t *testing.T) { userspaceClients(t) })
	t.Run("file-direct", func(t *testing.T) { userspaceClients(t, "--file-direct") })
}

func userspaceClients(t *testing.T, serveArgs ...string) {
	d := startDaemon(t, "", serveArgs...)
	files := t.TempDir()
	var legs []string
	for i := range 4 {
		legs = append(legs, testkit.Sparse(t, files, fmt.Sprintf("leg%d.img", i), 16<<20))
	}
	lin := testkit.Sparse(t, files, "lin.img", 64<<20)
	const mib = 2048 // sectors
	d.gdm("create", "linear", "--table", fmt.Sprintf("0 %d linear %s 0", 64*mib, lin))
	d.gdm("create", "striped", "--table", fmt.Sprintf("0 %d striped 4 128 %s 0 %s 0 %s 0 %s 0", 64*mib, legs[0], legs[1], legs[2], legs[3]))
	mixedA := testkit.Sparse(t, files, "mixed-a.img", 16<<20)
	mixedB := testkit.Sparse(t, files, "mixed-b.img", 16<<20)
	mixedC := testkit.Sparse(t, files, "mixed-c.img", 16<<20)
	d.gdm("create", "mixed",
		"--table", fmt.Sprintf("0 %d linear %s 0", 16*mib, mixedA),
		"--table", fmt.Sprintf("%d %d striped 2 64 %s 0 %s 0", 16*mib, 32*mib, mixedB, mixedC),
		"--table", fmt.Sprintf("%d %d zero", 48*mib, 16*mib))

	for _, name := range []string{"linear", "striped", "mixed"} {
		t.Run(name, func(t *testing.T) {
			u := d.uri(name)
			var info struct {
				Exports []struct {
					Size int64 `json:"export-size"`
				} `json:"exports"`
			}
			out := run(t, "nbdinfo", "--json", u)
			if err := json.Unmarshal([]byte(out), &info); err != nil || info.Exports[0].Size != 64<<20 {
				t.Fatalf("nbdinfo --json: %v\n%s", err, out)
			}
			// A fresh device is all holes (sparse files, and the zero target).
			if m := run(t, "nbdinfo", "--map", "--totals", u); !strings.Contains(m, "100.0%") || !strings.Contains(m, "hole,zero") {
				t.Fatalf("nbdinfo --map --totals on a fresh device:\n%s", m)
			}
			writable := int64(64 << 20)
			if name == "mixed" {
				writable = 48 << 20
			}
			// qemu-io pattern battery across target and chunk boundaries.
			cmds := []string{
				"write -P 0x11 0 1M", "write -P 0x22 65024 1536", "write -P 0x33 16775168 16K",
				"write -z 2M 1M", "aio_write -P 0x44 4M 256K", "aio_write -P 0x55 5M 256K", "aio_flush",
				"read -P 0x11 0 64512", "read -P 0x22 65024 1536", "read -P 0x33 16775168 16K",
				"read -P 0 2M 1M", "read -P 0x44 4M 256K", "read -P 0x55 5M 256K",
			}
			if name == "mixed" {
				cmds = append(cmds, "write -P 0x66 48M 4K", "read -P 0 48M 4K") // the zero target drops writes
			}
			args := []string{"-f", "raw"}
			for _, c := range cmds {
				args = append(args, "-c", c)
			}
			out = run(t, "qemu-io", append(args, u)...)
			if strings.Contains(out, "fail") || strings.Count(out, "read ") != strings.Count(strings.Join(cmds, "|"), "read ") {
				t.Fatalf("qemu-io:\n%s", out)
			}
			// nbdcopy in and out, qemu-img compare.
			src := filepath.Join(t.TempDir(), "src.img")
			data := make([]byte, writable)
			rand.Read(data[:writable/2])
			if err := os.WriteFile(src, data, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, "nbdcopy", src, u) // for mixed: the writable part only
			if name != "mixed" {
				run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, u)
			}
			back := filepath.Join(t.TempDir(), "back.img")
			run(t, "nbdcopy", u, back)
			got, _ := os.ReadFile(back)
			if !bytes.Equal(got[:writable], data) || (name == "mixed" && !bytes.Equal(got[writable:], make([]byte, 16<<20))) {
				t.Fatal("nbdcopy round trip differs")
			}
			// fio, 4 connections, crc32c verify.
			out = run(t, "fio", "--name=e2e", "--ioengine=nbd", "--uri="+u, "--rw=randwrite", "--bsrange=512-128k",
				"--iodepth=16", "--numjobs=4", fmt.Sprintf("--size=%dm", writable>>22), fmt.Sprintf("--offset_increment=%dm", writable>>22),
				"--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--group_reporting", "--output-format=json")
			if n := testkit.FioErrors(t, out); n != 0 {
				t.Fatalf("fio: %d errors\n%s", n, out)
			}
		})
	}
	if st := d.gdm("status", "striped"); !strings.HasSuffix(strings.TrimSpace(st), "1 AAAA") {
		t.Fatalf("status after the clients: %s", st)
	}
	direct := strings.Contains(d.gdm("deps", "linear", "--json"), `"direct": true`)
	if want := len(serveArgs) > 0; direct != want {
		t.Fatalf("deps --json says direct %v, want %v", direct, want)
	}
}
