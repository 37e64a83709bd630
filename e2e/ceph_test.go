package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// startCeph starts a one-monitor, one-OSD Ceph cluster under a temp dir
// with e2e/ceph-cluster.sh and returns its ceph.conf; the cluster is
// killed at cleanup. A cluster that does not come up fails the test (the
// tools being installed, a failure is a failure, not a skip).
func startCeph(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"ceph-mon", "ceph-osd", "monmaptool", "ceph", "rbd"} {
		testkit.NeedTool(t, tool)
	}
	dir := t.TempDir()
	_, port, _ := strings.Cut(freePort(t), ":")
	t.Cleanup(func() {
		if out, err := exec.Command("bash", "ceph-cluster.sh", "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("ceph-cluster.sh stop: %v\n%s", err, out)
		}
	})
	start := time.Now()
	cmd := exec.Command("bash", "ceph-cluster.sh", "start", dir, port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ceph-cluster.sh start: %v\n%s%s", err, out, stderr.String())
	}
	t.Logf("ceph cluster up in %v", time.Since(start).Round(100*time.Millisecond))
	return strings.TrimSpace(string(out))
}

// rbdCmd runs the rbd tool against the cluster of conf, bounded in time.
func rbdCmd(t *testing.T, conf string, args ...string) string {
	t.Helper()
	args = append([]string{"60", "rbd", "-c", conf}, args...)
	out, err := exec.Command("timeout", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rbd %s: %v\n%s", strings.Join(args[3:], " "), err, out)
	}
	return string(out)
}

// A gdm table with a leg on Ceph: an RBD image of a single-node cluster,
// served by qemu-nbd's rbd driver on a UNIX socket, is leg 0 of a striped
// table whose leg 1 is a local file. fio --verify passes through gdm, and
// after a flush through gdm every chunk of what gdm reads back is in the
// RBD image (read by rbd export, straight from the OSD) or the file, where
// the stripe puts it.
//
// qemu-nbd runs with librbd's cache in write-back mode (ceph 16's default
// policy, writearound, sends writes to the OSD at once), a dirty age of
// ten minutes and room for the whole image: written bytes reach the OSD
// within the test only when gdm passes a flush on to the leg (at qemu-io's
// flush, and when a client disconnects), so the byte check also checks
// that.
func TestCephRBDLeg(t *testing.T) {
	testStart := time.Now()
	qemuNbd := testkit.NeedTool(t, "qemu-nbd")
	fio := testkit.NeedTool(t, "fio")
	testkit.NeedTool(t, "nbdcopy")
	conf := startCeph(t)
	const legSize, chunk = 32 << 20, 64 << 10
	rbdCmd(t, conf, "create", "img", "--size", "32M")

	dir := t.TempDir()
	sock := filepath.Join(dir, "rbd.sock")
	cache := ":rbd_cache_policy=writeback:rbd_cache_writethrough_until_flush=false:rbd_cache_max_dirty_age=600" +
		":rbd_cache_size=134217728:rbd_cache_max_dirty=100663296:rbd_cache_target_dirty=67108864"
	startServer(t, "qemu-nbd", unixListening(sock), qemuNbd, "-f", "raw", "-t", "-e", "8", "-x", "vol", "-k", sock,
		"--cache=writeback", "rbd:rbd/img:conf="+conf+cache)
	file := testkit.Sparse(t, dir, "leg1.img", legSize)

	d := startDaemon(t, "")
	d.gdm("create", "ceph", "--table", fmt.Sprintf("0 %d striped 2 %d nbd+unix:///vol?socket=%s&timeout=20s 0 %s 0",
		2*legSize/512, chunk/512, sock, file))

	out, err := exec.Command(fio, "--name=ceph", "--ioengine=nbd", "--uri="+d.uri("ceph"), "--rw=randwrite", "--bs=4k-128k",
		"--size=64M", "--iodepth=8", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json").CombinedOutput()
	if err != nil || testkit.FioErrors(t, string(out)) != 0 {
		t.Fatalf("fio --verify through the table with a Ceph leg: %v\n%s", err, out)
	}
	// A second pattern over the first chunks, so that the check below does
	// not rest on fio's data alone.
	qemuIO(t, d, "ceph", true, "write -P 0x5c 60k 200k", "flush")

	// The RBD image is read first: a read of gdm's device by nbdcopy asks
	// for block status, which qemu answers by librbd's diff, which writes
	// the cache back.
	rbdImg := filepath.Join(dir, "rbd.img")
	rbdCmd(t, conf, "export", "--no-progress", "img", rbdImg)
	got := filepath.Join(dir, "gdm.img")
	run(t, "nbdcopy", d.uri("ceph"), got)
	whole, legs := readFile(t, got), [2][]byte{readFile(t, rbdImg), readFile(t, file)}
	if len(whole) != 2*legSize || len(legs[0]) != legSize || len(legs[1]) != legSize {
		t.Fatalf("sizes: gdm %d, rbd %d, file %d", len(whole), len(legs[0]), len(legs[1]))
	}
	if bytes.Count(legs[0], []byte{0}) == legSize {
		t.Fatal("the RBD image holds only zeroes after fio wrote through gdm")
	}
	bad := 0
	for k := 0; k < 2*legSize/chunk; k++ {
		leg, at := legs[k%2], k/2*chunk
		if !bytes.Equal(whole[k*chunk:(k+1)*chunk], leg[at:at+chunk]) {
			if bad++; bad <= 5 {
				t.Errorf("chunk %d (leg %d at %d): gdm reads other bytes than the leg holds", k, k%2, at)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d chunks differ", bad, 2*legSize/chunk)
	}
	pattern := bytes.Repeat([]byte{0x5c}, 200<<10)
	if !bytes.Equal(whole[60<<10:260<<10], pattern) || !bytes.Equal(legs[0][60<<10:64<<10], pattern[:4<<10]) {
		t.Fatal("qemu-io's pattern is not where it was written, or not in the RBD image")
	}
	t.Logf("the whole test took %v", time.Since(testStart).Round(100*time.Millisecond))
}
