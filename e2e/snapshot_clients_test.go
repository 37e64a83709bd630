package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// snapOriginWriter writes the origin with qemu-io, one process after
// another, until stop is closed (at most max runs), and keeps what each
// 64 KiB piece of the origin must hold: the pattern byte last written.
type snapOriginWriter struct {
	uri    string
	rng    *rand.Rand
	pieces []byte // pattern of each 64 KiB piece
	runs   int
	err    error
}

// run does one qemu-io process: 8 writes of 64 KiB to 512 KiB, each with
// its own pattern, then a flush.
func (w *snapOriginWriter) run() error {
	args := []string{"-f", "raw"}
	next := append([]byte(nil), w.pieces...)
	for range 8 {
		p := byte(0x10 + w.rng.IntN(0x60))
		n := 1 + w.rng.IntN(8)
		at := w.rng.IntN(len(next) - n + 1)
		args = append(args, "-c", fmt.Sprintf("write -P %#x %d %d", p, at<<16, n<<16))
		for i := at; i < at+n; i++ {
			next[i] = p
		}
	}
	args = append(args, "-c", "flush", w.uri)
	out, err := runErr("qemu-io", args...)
	if err != nil || strings.Contains(out, "failed") {
		return fmt.Errorf("qemu-io %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	w.pieces = next
	return nil
}

// runErr runs a client program and returns its output and error, for
// use off the test's goroutine.
func runErr(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// loop runs qemu-io until stop is closed or max runs are done.
func (w *snapOriginWriter) loop(stop <-chan struct{}, max int, done chan<- struct{}) {
	defer close(done)
	for ; w.runs < max; w.runs++ {
		select {
		case <-stop:
			return
		default:
		}
		if w.err = w.run(); w.err != nil {
			return
		}
	}
}

// fio writes and verifies (crc32c) the first half of a snapshot while
// qemu-io keeps writing its origin, all of it. Then: fio's verify passed;
// the snapshot's second half, never written through it, still reads the
// origin's data as of the snapshot's creation; a second fio pass verifies
// the first half again, after the origin writes; and the origin holds
// exactly what qemu-io wrote, none of fio's writes.
func TestSnapshotFioWhileOriginWritten(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	testkit.NeedTool(t, "fio")
	testkit.NeedTool(t, "nbdcopy")
	const size = 64 << 20
	d := startDaemon(t, "")
	disk := testkit.Sparse(t, d.dir, "disk.img", size)
	cow := testkit.Sparse(t, d.dir, "snap.cow", size+size/4)
	d.gdm("create", "base", "--table", fmt.Sprintf("0 %d snapshot-origin %s", size>>9, disk))
	run(t, "qemu-io", "-f", "raw", "-c", fmt.Sprintf("write -P 0xa1 0 %d", size), "-c", "flush", d.uri("base"))
	d.gdm("create", "snap", "--table", fmt.Sprintf("0 %d snapshot %s %s P 16", size>>9, disk, cow))

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	w := &snapOriginWriter{uri: d.uri("base"), rng: rand.New(rand.NewPCG(seed, 1)), pieces: bytes.Repeat([]byte{0xa1}, size>>16)}
	stop, done := make(chan struct{}), make(chan struct{})
	go w.loop(stop, 200, done)
	fio := []string{"--name=snap", "--ioengine=nbd", "--uri=" + d.uri("snap"), "--rw=randwrite", "--bsrange=512-64k",
		"--iodepth=16", "--size=32m", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json"}
	out, ferr := runErr("fio", append(fio, "--do_verify=1")...)
	close(stop)
	<-done
	if ferr != nil || testkit.FioErrors(t, out) != 0 || fioVerified(t, out) < 32<<20 {
		t.Fatalf("fio on the snapshot while the origin was written (it must verify all 32 MiB): %v\n%s", ferr, out)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	t.Logf("%d qemu-io runs on the origin during fio", w.runs)
	if w.runs == 0 {
		t.Fatal("no origin write ran alongside fio: the test proved nothing")
	}
	snapshotChecks(t, d, w, fio, size)
}

// snapshotChecks is the test's end: the snapshot's untouched half, fio's
// half verified again, and the origin against qemu-io's writes.
func snapshotChecks(t *testing.T, d *daemon, w *snapOriginWriter, fio []string, size int) {
	t.Helper()
	out := run(t, "qemu-io", "-f", "raw", "-r", "-c", fmt.Sprintf("read -P 0xa1 %d %d", size/2, size/2), d.uri("snap"))
	if strings.Contains(out, "fail") || !strings.Contains(out, "read ") {
		t.Fatalf("the snapshot's second half is not the origin as of its creation:\n%s", out)
	}
	out, err := runErr("fio", append(fio, "--verify_only")...)
	if err != nil || testkit.FioErrors(t, out) != 0 || fioVerified(t, out) < 32<<20 {
		t.Fatalf("fio's writes to the snapshot, verified after the origin writes (all 32 MiB): %v\n%s", err, out)
	}
	back := filepath.Join(t.TempDir(), "origin.img")
	run(t, "nbdcopy", d.uri("base"), back)
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range w.pieces {
		for j, b := range got[i<<16 : (i+1)<<16] {
			if b != p {
				t.Fatalf("origin byte %d is %#x, want %#x (qemu-io's last write there)", i<<16+j, b, p)
			}
		}
	}
	if st := d.gdm("status", "snap"); strings.Contains(st, "Invalid") {
		t.Fatalf("snapshot status: %s", st)
	}
}

// fioVerified is the bytes fio's JSON output says its jobs read: what its
// verify pass read back, so that a pass that checked nothing shows.
func fioVerified(t *testing.T, out string) int64 {
	t.Helper()
	var res struct {
		Jobs []struct {
			Read struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	var n int64
	for _, j := range res.Jobs {
		n += j.Read.IOBytes
	}
	t.Logf("fio verified %d bytes", n)
	return n
}
