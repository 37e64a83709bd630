package oracle

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

func TestBindUnbind(t *testing.T) {
	tb := "0 8 linear $0 0\n8 16 striped 2 8 $1 0 $0 8"
	bound := Bind(tb, []string{"/dev/vda", "/dev/vdb"})
	if want := "0 8 linear /dev/vda 0\n8 16 striped 2 8 /dev/vdb 0 /dev/vda 8"; bound != want {
		t.Fatalf("Bind = %q", bound)
	}
	names := map[string]int{"/dev/vda": 0, "/dev/vdb": 1, "254:0": 0, "254:16": 1}
	if got := Unbind(bound, names); got != tb {
		t.Fatalf("Unbind(Bind) = %q", got)
	}
	// dm's form and gdm's meet at $N, and spacing is kept: a missing blank
	// must still show.
	if a, b := Unbind("0 8 zero \n8 8 striped 2 254:16 254:0 1 AA\n", names),
		Unbind("0 8 zero\n8 8 striped 2 /dev/vdb /dev/vda 1 AA\n", names); a == b || strings.TrimSpace(a) == b ||
		!strings.Contains(a, "striped 2 $1 $0 1 AA") || !strings.Contains(b, "striped 2 $1 $0 1 AA") {
		t.Fatalf("Unbind: %q vs %q", a, b)
	}
}

func TestBoundaries(t *testing.T) {
	size, bounds := Boundaries("0 100 linear $0 0\n100 48 striped 3 8 $0 0 $1 0 $2 0\n148 4 zero")
	if size != 152*512 {
		t.Fatalf("size %d", size)
	}
	want := map[int64]bool{100: true, 108: true, 116: true, 124: true, 132: true, 140: true, 148: true}
	for _, b := range bounds {
		delete(want, b/512)
	}
	if len(want) > 0 {
		t.Fatalf("bounds %v lack sectors %v", bounds, want)
	}
}

// Every script stays inside the device, in whole sectors of 512 B to 4 MiB,
// crosses every boundary with a write, and is the same for the same seed.
func TestStandardScript(t *testing.T) {
	for seed := uint64(1); seed < 200; seed++ {
		c := Generated(seed)
		ops := Standard(seed, c.Table)
		if fmt.Sprint(ops) != fmt.Sprint(Standard(seed, c.Table)) {
			t.Fatalf("seed %d: two scripts", seed)
		}
		size, bounds := Boundaries(c.Table)
		crossed := map[int64]bool{}
		for _, op := range ops {
			if op.Kind == Flush {
				continue
			}
			if op.Off < 0 || op.Len < 512 || op.Len > maxIO || op.Off+op.Len > size || op.Off%512 != 0 || op.Len%512 != 0 {
				t.Fatalf("seed %d: %v out of a %d-byte device", seed, op, size)
			}
			for _, b := range bounds {
				if op.Kind == Write && op.Off < b && b < op.Off+op.Len {
					crossed[b] = true
				}
			}
		}
		for _, b := range bounds {
			if !crossed[b] && b >= 512 && b <= size-512 {
				t.Errorf("seed %d: no write crosses byte %d of %q", seed, b, c.Table)
			}
		}
	}
}

// Generated tables load in gdm (over files the size of the guest's disks,
// so a leg past a disk's end is refused) and use every target type they
// draw from.
func TestGeneratedTables(t *testing.T) {
	dir := t.TempDir()
	devs := make([]string, 4)
	for i := range devs {
		devs[i] = filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(devs[i], nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(devs[i], DiskBytes); err != nil {
			t.Fatal(err)
		}
	}
	dev := table.NewDevice("generated", false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	types := map[string]int{}
	for seed := uint64(0); seed < 300; seed++ {
		c := Generated(seed)
		tb, err := dev.Build(Bind(c.Table, devs), targets.OpenOptions{})
		if err != nil {
			t.Fatalf("seed %d: %q: %v", seed, c.Table, err)
		}
		for _, l := range tb.Lines() {
			types[l.Type]++
		}
		dev.Discard(tb)
	}
	for _, typ := range []string{"zero", "error", "linear", "striped", "crypt", "delay", "flakey"} {
		if types[typ] == 0 {
			t.Errorf("no generated table has a %s target (%v)", typ, types)
		}
	}
}

// fakeSide maps "0 N linear $0 0" by doing I/O on the backing file itself;
// a wrong one does I/O on a copy with one corrupt sector instead, as a
// target with a wrong mapping would read the wrong place.
type fakeSide struct {
	name, disk, mapped string
	tables             map[string]string
	// keys is what TableKeys prints instead of the table; noKeys makes it
	// not ok; status replaces Status's fixed line.
	keys   string
	noKeys bool
	status string
	// log records creates and removes, in order ("+name", "-name").
	log []string
	// attachSecond, when set, is what the second Attach of a device
	// name returns (a second half that maps the wrong place).
	attachSecond string
	attached     map[string]int
	// byName maps a device name to its own file instead of mapped.
	byName map[string]string
	// refuse is a device name whose Create fails; given records every
	// table created or reloaded, as bound.
	refuse string
	given  []string
	// failResume makes every Resume fail.
	failResume bool
}

func (f *fakeSide) Name() string             { return f.name }
func (f *fakeSide) Disks() []string          { return []string{f.disk} }
func (f *fakeSide) DevNames() map[string]int { return map[string]int{f.disk: 0} }
func (f *fakeSide) Create(n, tb string) error {
	if n == f.refuse {
		return fmt.Errorf("refused")
	}
	f.given = append(f.given, tb)
	f.tables[n] = tb
	f.log = append(f.log, "+"+n)
	return nil
}
func (f *fakeSide) Attach(n string, _ int) (string, error) {
	if f.attached == nil {
		f.attached = map[string]int{}
	}
	if f.attached[n]++; f.attached[n] == 2 && f.attachSecond != "" {
		return f.attachSecond, nil
	}
	if p, ok := f.byName[n]; ok {
		return p, nil
	}
	return f.mapped, nil
}
func (f *fakeSide) Stack(n string, _ int) (string, error) { return f.Attach(n, 0) }
func (f *fakeSide) Detach(string) error                   { return nil }
func (f *fakeSide) Remove(n string) error {
	delete(f.tables, n)
	f.log = append(f.log, "-"+n)
	return nil
}
func (f *fakeSide) Table(n string) (string, error) { return f.tables[n], nil }
func (f *fakeSide) Status(n string) (string, error) {
	if f.status != "" {
		return f.status, nil
	}
	return "0 8192 linear \n", nil
}
func (f *fakeSide) Suspend(string) error { return nil }
func (f *fakeSide) Resume(string) error {
	if f.failResume {
		return fmt.Errorf("resume refused")
	}
	return nil
}
func (f *fakeSide) Reload(n, tb string) error {
	f.given = append(f.given, tb)
	f.tables[n] = tb
	return nil
}
func (f *fakeSide) Message(string, []string) error { return nil }
func (f *fakeSide) TableKeys(n string) (string, bool, error) {
	if f.noKeys {
		return "", false, nil
	}
	if f.keys != "" {
		return f.keys, true, nil
	}
	return f.tables[n], true, nil
}

// ownFiles gives each named device a zeroed file of its own (byName).
func (f *fakeSide) ownFiles(t *testing.T, size int64, names ...string) {
	f.byName = map[string]string{}
	for _, n := range names {
		f.byName[n] = f.disk + "." + n
		if err := os.WriteFile(f.byName[n], make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newFake(t *testing.T, name string, size int64) *fakeSide {
	dir := t.TempDir()
	f := &fakeSide{name: name, disk: filepath.Join(dir, "disk"), tables: map[string]string{}}
	f.mapped = f.disk
	if err := os.WriteFile(f.disk, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRunnerAgrees(t *testing.T) {
	const size = 8192 * 512
	rn := &Runner{A: newFake(t, "dm", size), B: newFake(t, "gdm", size), DiskSize: size}
	c := Case{Name: "same", Seed: 5, Devs: []Init{Pattern(3)}, Table: "0 8192 linear $0 0"}
	if r := rn.Run(c); !r.OK() || r.Ops == 0 {
		t.Fatalf("two identical sides differ:\n%s", r)
	}
}

// A side whose device is not its backing disk, and reads one wrong
// sector, is caught: the report names the op, the sector, both sides'
// bytes and the seed, and the final contents differ.
func TestRunnerCatchesWrongMapping(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	b.mapped = filepath.Join(filepath.Dir(b.disk), "elsewhere")
	wrong := make([]byte, size)
	fill(wrong, 3, 0)
	wrong[4096*512+17] ^= 0xff // sector 4096 is read back by the final full read
	if err := os.WriteFile(b.mapped, wrong, 0o644); err != nil {
		t.Fatal(err)
	}
	rn := &Runner{A: a, B: b, DiskSize: size}
	c := Case{Name: "wrong", Seed: 77, Devs: []Init{Pattern(3)}, Table: "0 8192 linear $0 0", Script: []Op{
		{Kind: Write, Off: 0, Len: 8192, Seed: 1},
		{Kind: Read, Off: 2 << 20, Len: 64 << 10},
	}}
	r := rn.Run(c)
	text := r.String()
	for _, want := range []string{"seed 77", "op 1 of 2, read 65536@2097152", "read data differs", "sector 4096",
		fmt.Sprintf("%#010x:", int64(4096*512+16)), "final contents of backing device $0: first difference at byte 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if r.OK() {
		t.Fatal("a wrong side passed")
	}
}

func TestDataDiff(t *testing.T) {
	a := bytes.Repeat([]byte{1}, 2048)
	b := bytes.Clone(a)
	b[1030] = 9
	b[1900] = 9
	d := dataDiff("dm", "gdm", a, b, 512)
	for _, want := range []string{"byte 1542", "sector 3", "+1030", "2 sector(s)", "dm  0x0000000600: 01 01 01 01 01 01 01", "gdm 0x0000000600: 01 01 01 01 01 01 09"} {
		if !strings.Contains(d, want) {
			t.Errorf("dataDiff lacks %q:\n%s", want, d)
		}
	}
	if dataDiff("dm", "gdm", a, a, 0) != "" {
		t.Error("equal buffers differ")
	}
}
