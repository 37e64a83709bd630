package table

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
	"golang.org/x/sys/unix"
)

// model is the in-memory reference a device must agree with. Bytes a trim
// left undefined are not compared until written again.
type model struct {
	data    []byte
	defined []bool
}

func newModel(size int64) *model {
	m := &model{data: make([]byte, size), defined: make([]bool, size)}
	for i := range m.defined {
		m.defined[i] = true // sparse backing files read as zeros
	}
	return m
}

func (m *model) set(off int64, p []byte) {
	copy(m.data[off:], p)
	for i := range p {
		m.defined[off+int64(i)] = true
	}
}

func (m *model) trim(off, n int64) {
	for i := off; i < off+n; i++ {
		m.defined[i] = false
	}
}

func (m *model) check(t *testing.T, what string, off int64, got []byte) {
	t.Helper()
	for i := range got {
		j := off + int64(i)
		if m.defined[j] && got[i] != m.data[j] {
			t.Fatalf("%s: byte %d (device offset %d) = %#x, want %#x", what, i, j, got[i], m.data[j])
		}
	}
}

// linearLayout splits sectors into random linear targets alternating over
// files, each at its own offset, so no two targets share a byte.
func linearLayout(r *rand.Rand, files []string, sectors uint64, maxTarget uint64) string {
	var b strings.Builder
	offs := make([]uint64, len(files))
	for start, i := uint64(0), 0; start < sectors; i++ {
		n := min(sectors-start, 1+r.Uint64N(maxTarget))
		f := i % len(files)
		fmt.Fprintf(&b, "%d %d linear %s %d\n", start, n, files[f], offs[f])
		offs[f] += n + r.Uint64N(3) // sometimes leave a hole between targets
		start += n
	}
	return b.String()
}

func runModel(t *testing.T, d *Device, size int64, steps int, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, seed+1))
	m := newModel(size)
	fill := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 4<<20)
	spliced, spliceFull := 0, 0
	defer func() {
		t.Logf("splice reads: %d done, %d refused for a full pipe", spliced, spliceFull)
		if spliced == 0 && !t.Failed() {
			t.Error("no read went through a pipe")
		}
	}()
	for step := 0; step < steps; step++ {
		// 512 B to 4 MiB, log-uniform; half the time at any byte offset.
		n := int64(512) << r.IntN(14)
		n = min(n+r.Int64N(n), 4<<20, size)
		var off int64
		if r.IntN(2) == 0 {
			off = r.Int64N(size-n+1) &^ 511
		} else {
			off = r.Int64N(size - n + 1)
		}
		p := buf[:n]
		switch op := r.IntN(10); {
		case op < 2 && n <= 1<<20:
			// Through a pipe, as the NBD server sends large reads. A
			// range at odd offsets may need more pipe slots than there
			// are (ErrPipeFull); the server then reads it with ReadAt.
			got, err := spliceRead(t, d, off, n)
			if err == targets.ErrPipeFull {
				spliceFull++
				break
			}
			if err != nil {
				t.Fatalf("step %d: splice read %d@%d: %v", step, n, off, err)
			}
			spliced++
			m.check(t, fmt.Sprintf("step %d splice read %d@%d", step, n, off), off, got)
		case op < 4:
			if err := d.ReadAt(ctx, p, off); err != nil {
				t.Fatalf("step %d: read %d@%d: %v", step, n, off, err)
			}
			m.check(t, fmt.Sprintf("step %d read %d@%d", step, n, off), off, p)
		case op < 8:
			fill.Read(p)
			if err := d.WriteAt(ctx, p, off); err != nil {
				t.Fatalf("step %d: write %d@%d: %v", step, n, off, err)
			}
			m.set(off, p)
		case op == 8:
			if err := d.Trim(ctx, off, n); err != nil {
				t.Fatalf("step %d: trim %d@%d: %v", step, n, off, err)
			}
			m.trim(off, n)
		default:
			flags := targets.ZeroFlags{NoHole: r.IntN(2) == 0}
			if err := d.Zero(ctx, off, n, flags); err != nil {
				t.Fatalf("step %d: zero %d@%d: %v", step, n, off, err)
			}
			m.set(off, make([]byte, n))
		}
	}
	// Every byte, at the end, through reads that cross every boundary.
	whole := make([]byte, size)
	if err := d.ReadAt(ctx, whole, 0); err != nil {
		t.Fatal(err)
	}
	m.check(t, "final read", 0, whole)
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// spliceRead reads [off, off+n) of d through a 1 MiB pipe (SpliceRead).
func spliceRead(t *testing.T, d *Device, off, n int64) ([]byte, error) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.SpliceRead(context.Background(), fds[1], off, n); err != nil {
		return nil, err
	}
	got := make([]byte, n)
	for done := 0; done < len(got); {
		m, err := unix.Read(fds[0], got[done:])
		if err != nil || m == 0 {
			t.Fatalf("pipe holds %d of %d bytes: %v", done, n, err)
		}
		done += m
	}
	if m, _ := unix.Read(fds[0], make([]byte, 1)); m > 0 {
		t.Fatal("pipe holds more than the range")
	}
	return got, nil
}

func TestModelLinear(t *testing.T) {
	dir := t.TempDir()
	files := []string{testkit.Sparse(t, dir, "a", 64<<20), testkit.Sparse(t, dir, "b", 64<<20)}
	const sectors = 48 << 11 // 48 MiB
	text := linearLayout(rand.New(rand.NewPCG(7, 8)), files, sectors, 9000)
	d := newLiveDevice(t, text)
	defer d.Close()
	runModel(t, d, sectors*512, 400, 11)
	// 1 MiB from an odd byte touches 257 pages: one more than the pipe
	// has slots. SpliceRead says so rather than block or fail the read.
	if _, err := spliceRead(t, d, 1, 1<<20); err != targets.ErrPipeFull {
		t.Errorf("1 MiB at byte 1 through a 1 MiB pipe: err = %v, want ErrPipeFull", err)
	}
}

func TestModelStriped(t *testing.T) {
	dir := t.TempDir()
	var legs []string
	for i := range 4 {
		legs = append(legs, testkit.Sparse(t, dir, fmt.Sprintf("leg%d", i), 32<<20))
	}
	// Two striped segments (4 legs of 32 KiB chunks, then 2 legs of 8 KiB
	// chunks further into two of the files) and a linear tail.
	text := fmt.Sprintf("0 65536 striped 4 64 %s 0 %s 0 %s 0 %s 0\n", legs[0], legs[1], legs[2], legs[3]) +
		fmt.Sprintf("65536 16384 striped 2 16 %s 16384 %s 16384\n", legs[2], legs[0]) +
		fmt.Sprintf("81920 2048 linear %s 40000\n", legs[3])
	d := newLiveDevice(t, text)
	defer d.Close()
	runModel(t, d, 83968*512, 400, 12)

	// Read one chunk-aligned stripe row back leg by leg: chunk c of the
	// first segment is leg c%4 at chunk c/4.
	ctx := context.Background()
	row := make([]byte, 6*32768)
	if err := d.ReadAt(ctx, row, 5*32768); err != nil {
		t.Fatal(err)
	}
	err := d.View(Live, func(tb *Table) error {
		devs := tb.Devs().Devs()
		for c := int64(5); c < 11; c++ {
			leg := devs[c%4]
			got := make([]byte, 32768)
			if err := leg.ReadAt(got, (c/4)*32768); err != nil {
				return err
			}
			if !bytes.Equal(got, row[(c-5)*32768:(c-4)*32768]) {
				return fmt.Errorf("chunk %d is not at leg %d chunk %d", c, c%4, c/4)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestZeroAndErrorTargets(t *testing.T) {
	dir := t.TempDir()
	f := testkit.Sparse(t, dir, "f", 1<<20)
	d := newLiveDevice(t, "0 8 zero\n8 8 error\n16 8 linear "+f+" 0\n")
	defer d.Close()
	ctx := context.Background()
	p := bytes.Repeat([]byte{0xff}, 4096)
	if err := d.WriteAt(ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadAt(ctx, p, 0); err != nil || !bytes.Equal(p, make([]byte, 4096)) {
		t.Fatalf("zero target read = %v, nonzero=%v", err, !bytes.Equal(p, make([]byte, 4096)))
	}
	for _, op := range []func() error{
		func() error { return d.ReadAt(ctx, p[:512], 8*512) },
		func() error { return d.WriteAt(ctx, p[:512], 15*512) },
		func() error { return d.ReadAt(ctx, p, 4*512) }, // spans zero, error and linear
		func() error { return d.Trim(ctx, 8*512, 512) },
		func() error { return d.Zero(ctx, 8*512, 512, targets.ZeroFlags{}) },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "error target") {
			t.Errorf("I/O on the error target: err = %v", err)
		}
	}
	if err := d.ReadAt(ctx, p[:512], 24*512-1); err == nil {
		t.Error("read past the end succeeded")
	}
	if err := d.Flush(ctx); err != nil {
		t.Errorf("flush with an error target: %v (dm sends no flush to error targets)", err)
	}
	must(t, d.View(Live, func(segs *Table) error {
		if s := segs.SegmentSnapshot()[1]; s.Errors[OpRead] != 2 || s.Errors[OpWrite] != 1 {
			t.Errorf("error target counted read errors %d, write errors %d; want 2, 1", s.Errors[OpRead], s.Errors[OpWrite])
		}
		return nil
	}))
	if got, err := spliceRead(t, d, 0, 4096); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Errorf("zero target through a pipe: %v", err)
	}
	if _, err := spliceRead(t, d, 0, 12*512); err == nil || !strings.Contains(err.Error(), "error target") {
		t.Errorf("error target through a pipe: err = %v", err)
	}
}

// A write or write-zeroes across an error target fails, but still does the
// linear part after it, as dm does (found by the dm oracle, e2e/oracle_test.go).
func TestWriteAcrossErrorTarget(t *testing.T) {
	f := testkit.Sparse(t, t.TempDir(), "f", 1<<20)
	d := newLiveDevice(t, "0 8 zero\n8 8 error\n16 8 linear "+f+" 0\n")
	defer d.Close()
	ctx := context.Background()
	p := make([]byte, 4096)
	for _, op := range []func() error{
		func() error { return d.WriteAt(ctx, p, 12*512) },
		func() error { return d.Zero(ctx, 12*512, 4096, targets.ZeroFlags{NoHole: true}) },
	} {
		copy(p, bytes.Repeat([]byte{0xab}, 4096))
		if err := d.WriteAt(ctx, p[:4*512], 16*512); err != nil {
			t.Fatal(err)
		}
		copy(p, bytes.Repeat([]byte{0xcd}, 4096))
		if err := op(); err == nil {
			t.Error("I/O across the error target succeeded")
		}
		got := make([]byte, 4*512)
		if err := d.ReadAt(ctx, got, 16*512); err != nil || bytes.Contains(got, []byte{0xab}) {
			t.Errorf("the linear part after the error target was not done: %v %x", err, got[:8])
		}
	}

}
