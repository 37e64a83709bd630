package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Every guest test boots the same way: vm-initramfs.sh builds an
// initramfs around a script (busybox, the programs and modules it is
// told), qemu boots the cloud kernel on it under TCG with one CPU, and the
// script's last word on the console is GDM-VM-OK. bootTCG is that one
// place; each test says only what differs (tcgGuest).

// aesCPU is qemu64 with AES-NI and PCLMULQDQ (which Go's crypto/aes also
// asks for): AES then runs as instructions TCG emulates rather than as
// table code it translates, and crypt work takes about half as long.
const aesCPU = "qemu64,+aes,+pclmulqdq,+ssse3,+sse4.1,+sse4.2"

// tcgSMP is the guests' -smp: one CPU, and room for a second never
// plugged in. That room is what makes the guest's memory barriers real.
// QEMU 7.2's TCG (Debian 12's) translates a guest's barriers and locked
// instructions into host fences and atomics only when its translation is
// "parallel", which multi-threaded TCG takes to mean maxcpus > 1; with
// one CPU it leaves them out. But virtio-blk's completions run in qemu's
// main-loop thread, beside the vCPU's, and virtio's handshake is a store
// then a load on each side with a full barrier between (the guest writes
// which completion it wants an interrupt for, then reads how far the
// device got; the device writes how far it got, then reads what the
// guest wants): without the guest's fence, the host lets its load pass
// its store, each side misses the other's update, and the interrupt is
// never sent, nor ever asked for again. The oracle's guest lost dm reads
// exactly so: requests in flight on the virtio disk under dm, for good,
// two full runs in eleven and once in CI. A guest running fio (4k randrw,
// depth 32) on a virtio disk stalled so within 2 minutes, twice; with
// maxcpus=2, 2 x 8 minutes ran clean (b83c15b has the numbers). QEMU
// 8.1 fixed it upstream ("tcg: Do not elide memory barriers for
// !CF_PARALLEL in system mode", June 2023: "even with a single cpu we
// have i/o threads running in parallel"); maxcpus=2 gets the same on 7.2.
const tcgSMP = "1,maxcpus=2"

// tcgGuest says how to build and boot a TCG guest (bootTCG).
type tcgGuest struct {
	env     []string      // for vm-initramfs.sh: VM_BASE_PROGS, VM_PROGS, VM_MODULES, ...
	cpu     string        // qemu's -cpu; "" for its default
	memory  string        // qemu's -m; "" for 1024
	disks   []string      // raw images, each a virtio disk with serial disk<N>, in order
	extra   []string      // more qemu arguments (a network, disks of another shape)
	timeout time.Duration // a guard against a hang, not a speed bound
	// digest, if set, sums up a failed guest's console in a few lines,
	// printed before the whole console: CI keeps only a failure's first
	// and last lines, and a hang's console runs to hundreds.
	digest func(console string) string
	// stopOn, if set, is a console line's start that ends the guest at
	// once (qemu is killed): bootTCG then returns the console so far
	// without failing, and the caller reads it.
	stopOn string
}

// bootTCG builds an initramfs in dir that runs script (vm-initramfs.sh,
// with g.env), boots it under TCG with g's disks, and returns the console
// with qemu's CRLFs made LFs; the guest must reach GDM-VM-OK.
func bootTCG(t *testing.T, dir, script string, g tcgGuest) string {
	t.Helper()
	qemu := testkit.NeedTool(t, "qemu-system-x86_64")
	testkit.NeedTool(t, "busybox")
	if k, _ := filepath.Glob("/boot/vmlinuz-*cloud-amd64"); len(k) == 0 {
		testkit.SkipOrFail(t, "linux-image-cloud-amd64 is not installed")
	}
	guest := filepath.Join(dir, "guest.sh")
	if err := os.WriteFile(guest, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := exec.Command("bash", "vm-initramfs.sh", dir, guest)
	mk.Env = append(os.Environ(), g.env...)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("vm-initramfs.sh: %v\n%s", err, out)
	}
	memory := g.memory
	if memory == "" {
		memory = "1024"
	}
	args := []string{"-accel", "tcg,thread=multi", "-m", memory, "-smp", tcgSMP,
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.gz"),
		"-append", "console=ttyS0 panic=-1 edd=off quiet", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"}
	if g.cpu != "" {
		args = append(args, "-cpu", g.cpu)
	}
	for i, img := range g.disks {
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "file="+img+",format=raw,if=none,id="+id, "-device", "virtio-blk-pci,drive="+id+",serial="+id)
	}
	args = append(args, g.extra...)
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	out := &stopWriter{stopOn: g.stopOn, stop: cancel}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	t.Logf("guest ran for %v", time.Since(start).Round(time.Second))
	console := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if out.stopped() {
		return console
	}
	if err != nil || !strings.Contains(console, "GDM-VM-OK") {
		head := ""
		if g.digest != nil {
			head = g.digest(console)
		}
		t.Fatalf("guest failed (%v):\n%s\nits console:\n%s", err, head, console)
	}
	return console
}

// stopWriter collects a guest's console and calls stop once a whole line
// (through its newline: the caller reads what follows the marker) starts
// with stopOn (never when stopOn is "").
type stopWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	stopOn string
	stop   func()
	hit    bool
	next   int // where the first line not yet looked at starts
}

func (w *stopWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for w.stopOn != "" && !w.hit {
		rest := w.buf.Bytes()[w.next:]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			break
		}
		if bytes.HasPrefix(rest, []byte(w.stopOn)) {
			w.hit = true
			w.stop()
		}
		w.next += end + 1
	}
	return len(p), nil
}

func (w *stopWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *stopWriter) stopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hit
}

// buildForGuest builds pkg (relative to e2e) statically into dir/name and
// returns its path: the initramfs has no libc.
func buildForGuest(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}
