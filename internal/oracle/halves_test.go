package oracle

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// A case's More devices are made after its own and removed before it, on
// both sides, in both halves; an op reaches the device its Dev names, and
// one naming no device is reported.
func TestRunnerMoreDevices(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	rn := &Runner{A: a, B: b, DiskSize: size}
	a.ownFiles(t, size, "c-1")
	b.ownFiles(t, size, "c-1")
	c := Case{Name: "c", Seed: 1, Devs: []Init{Pattern(3)}, Table: "0 8192 linear $0 0",
		More: []string{"0 8192 linear $0 0"}, Script: []Op{{Kind: Write, Off: 0, Len: 4096, Seed: 1, Dev: 1}},
		Then: &Half{Table: "0 8192 linear $0 0", Script: []Op{{Kind: Read, Off: 0, Len: 4096}}}}
	if r := rn.Run(c); !r.OK() || r.Ops != 2 {
		t.Fatalf("two identical sides differ, or not every op ran:\n%s", r)
	}
	want := []string{"+c", "+c-1", "-c-1", "-c", "+c", "-c"}
	written := make([]byte, 4096)
	fill(written, 1, 0)
	for _, f := range []*fakeSide{a, b} {
		if !slices.Equal(f.log, want) {
			t.Errorf("%s made and removed %v, want %v", f.name, f.log, want)
		}
		if got, _ := os.ReadFile(f.byName["c-1"]); !bytes.Equal(got[:4096], written) {
			t.Errorf("%s: the write on device 1 did not reach device 1", f.name)
		}
	}
	c.Then, c.Script = nil, []Op{{Kind: Read, Off: 0, Len: 512, Dev: 2}}
	if r := rn.Run(c); r.OK() || !strings.Contains(r.String(), "the case has no device 2") {
		t.Fatalf("an op on a device the case lacks passed:\n%s", r)
	}
}

// Between the halves each side's backing devices get the other's bytes,
// and what differs in the second half says so.
func TestRunnerSwapsForSecondHalf(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	rn := &Runner{A: a, B: b, DiskSize: size}
	pa, pb := make([]byte, size), make([]byte, size)
	fill(pa, 1, 0)
	fill(pb, 2, 0)
	if err := os.WriteFile(a.disk, pa, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.disk, pb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rn.swapDisks(1); err != nil {
		t.Fatal(err)
	}
	ga, _ := os.ReadFile(a.disk)
	gb, _ := os.ReadFile(b.disk)
	if !bytes.Equal(ga, pb) || !bytes.Equal(gb, pa) {
		t.Fatal("the backing devices were not swapped")
	}
	// gdm's second half reads a wrong place: the report names the half.
	c := Case{Name: "s", Seed: 2, Devs: []Init{Pattern(3)}, Table: "0 8192 linear $0 0",
		Script: []Op{{Kind: Write, Off: 0, Len: 4096, Seed: 1}},
		Then:   &Half{Table: "0 8192 linear $0 0", Script: []Op{{Kind: Read, Off: 0, Len: 4096}}}}
	other := b.disk + ".other"
	if err := os.WriteFile(other, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	b.attachSecond = other
	r := rn.Run(c)
	if r.OK() || !strings.Contains(r.String(), "second half (each side on the other's backing devices): op 0 of 1, read") {
		t.Fatalf("a second half that differs passed, or the report does not say which half:\n%s", r)
	}
}

// mergeDone reads snapshot-merge's usage, and nothing else.
func TestMergeDone(t *testing.T) {
	for _, c := range []struct {
		status   string
		done, ok bool
	}{
		{"0 16384 snapshot-merge 16/16384 16\n", true, true},
		{"0 16384 snapshot-merge 48/16384 16\n", false, true},
		{"0 16384 snapshot-merge Merge failed\n", false, false},
		{"0 16384 snapshot 16/16384 16\n", false, false},
		{"0 16384 snapshot-merge 16 16\n", false, false},
	} {
		if done, ok := mergeDone(c.status); done != c.done || ok != c.ok {
			t.Errorf("mergeDone(%q) = %v, %v; want %v, %v", c.status, done, ok, c.done, c.ok)
		}
	}
}

// A Scratch backing device is noted, not compared; any other is.
func TestRunnerScratch(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	b.mapped = b.disk + ".elsewhere" // gdm's write misses its disk
	if err := os.WriteFile(b.mapped, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	rn := &Runner{A: a, B: b, DiskSize: size}
	c := Case{Name: "n", Seed: 3, Devs: []Init{Zeros}, Table: "0 8192 linear $0 0",
		Script: []Op{{Kind: Write, Off: 0, Len: 4096, Seed: 1}}}
	if r := rn.Run(c); r.OK() {
		t.Fatalf("backing devices that differ passed:\n%s", r)
	}
	c.Scratch = []int{0}
	if r := rn.Run(c); !r.OK() || !strings.Contains(r.String(), "$0 not compared") {
		t.Fatalf("a scratch device was compared, or not noted:\n%s", r)
	}
}

// Attaches take nbd indices 1 up to the guest's last, then 1 again: a run
// attaches more devices than the guest has.
func TestNextNBDWraps(t *testing.T) {
	rn := &Runner{}
	for want := 1; want < NBDDevices; want++ {
		if got := rn.nextNBD(); got != want {
			t.Fatalf("attach %d got /dev/nbd%d", want, got)
		}
	}
	if got := rn.nextNBD(); got != 1 {
		t.Fatalf("the attach after /dev/nbd%d got /dev/nbd%d, want /dev/nbd1", NBDDevices-1, got)
	}
}
