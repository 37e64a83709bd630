package targets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"
)

// cowImage is a COW device in dm's persistent format, laid out here from
// the format's description alone (not from gdm's code): a header chunk,
// then metadata areas of chunk/16 {old, new} pairs, each followed by the
// data chunks it maps. Exception i is the i-th data chunk in that order.
type cowImage struct {
	chunk   int64    // bytes
	size    int64    // the device's
	olds    []uint64 // the origin chunk of each exception, in commit order
	data    [][]byte // each exception's chunk
	invalid bool
}

// dataChunk is where exception i's data lies.
func (c *cowImage) dataChunk(i int) int64 {
	per := int(c.chunk / 16)
	area := i / per
	return 1 + int64(area)*int64(per+1) + 1 + int64(i%per)
}

func (c *cowImage) add(old uint64, data []byte) {
	c.olds = append(c.olds, old)
	c.data = append(c.data, append([]byte(nil), data...))
}

func (c *cowImage) bytes() []byte {
	b := make([]byte, c.size)
	copy(b, "SnAp")
	if !c.invalid {
		b[4] = 1
	}
	b[8] = 1
	binary.LittleEndian.PutUint32(b[12:], uint32(c.chunk/512))
	per := int(c.chunk / 16)
	for i, old := range c.olds {
		areaOff := (1 + int64(i/per)*int64(per+1)) * c.chunk
		pair := b[areaOff+int64(i%per)*16:]
		binary.LittleEndian.PutUint64(pair, old)
		binary.LittleEndian.PutUint64(pair[8:], uint64(c.dataChunk(i)))
		copy(b[c.dataChunk(i)*c.chunk:], c.data[i])
	}
	return b
}

func chunkOf(b []byte, c, chunk int64) []byte { return b[c*chunk : (c+1)*chunk] }

// After a known sequence of origin and snapshot writes, the COW device
// holds exactly what dm would have written: 70 exceptions of 1 KiB chunks
// fill the first metadata area (64 pairs) and start the second.
func TestSnapshotWritesDmFormat(t *testing.T) {
	const chunk = 1024
	orig := fillPattern(t, 128*chunk, 1)
	before := readFile(t, orig)
	cow := tempFile(t, 100*chunk)
	img := &cowImage{chunk: chunk, size: 100 * chunk}
	o := newSnapTable(t, "snapshot-origin", 256, orig)
	s := newSnapTable(t, "snapshot", 256, orig, cow, "P", "2").resume()

	o.mustWrite(make([]byte, 100), 3*chunk+10, 0)
	img.add(3, chunkOf(before, 3, chunk))
	piece := bytes.Repeat([]byte{0xAB}, 300)
	s.mustWrite(piece, 5*chunk+200, 0)
	c5 := append([]byte(nil), chunkOf(before, 5, chunk)...)
	copy(c5[200:], piece)
	img.add(5, c5)
	full := bytes.Repeat([]byte{0xCD}, chunk)
	s.mustWrite(full, 6*chunk, FUA)
	img.add(6, full)
	o.mustWrite(make([]byte, 100), 7*chunk+1000, 0)
	img.add(7, chunkOf(before, 7, chunk))
	img.add(8, chunkOf(before, 8, chunk))
	for c := int64(9); c < 74; c++ {
		o.mustWrite([]byte{byte(c)}, c*chunk, FUA)
		img.add(uint64(c), chunkOf(before, c, chunk))
	}
	if got := readFile(t, cow); !bytes.Equal(got, img.bytes()) {
		t.Fatalf("COW device differs from dm's format at byte %d", firstDiff(got, img.bytes()))
	}
	if got, want := s.tg.Status(StatusInfo), "146/200 6"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}

	// Reopened, the store appends where it stopped.
	s.destroy()
	s = newSnapTable(t, "snapshot", 256, orig, cow, "P", "2").resume()
	o.mustWrite([]byte{1}, 80*chunk, 0)
	img.add(80, chunkOf(before, 80, chunk))
	if got := readFile(t, cow); !bytes.Equal(got, img.bytes()) {
		t.Fatalf("after reopen: COW device differs from dm's format at byte %d", firstDiff(got, img.bytes()))
	}
	want := append([]byte(nil), before...)
	copy(want[5*chunk+200:], piece)
	copy(want[6*chunk:], full)
	if got := s.mustRead(0, 128*chunk); !bytes.Equal(got, want) {
		t.Fatalf("snapshot after reopen differs at byte %d", firstDiff(got, want))
	}
}

// A COW device laid out by the test (66 exceptions over two areas, origin
// chunks in scrambled order) loads: the snapshot reads the exceptions'
// data where they are and the origin elsewhere, and its usage is dm's.
func TestSnapshotLoadsDmFormat(t *testing.T) {
	const chunk = 1024
	orig := fillPattern(t, 128*chunk, 2)
	want := readFile(t, orig)
	img := &cowImage{chunk: chunk, size: 80 * chunk}
	for i := range 66 {
		d := make([]byte, chunk)
		pattern(d, int64(i), 0x55)
		old := uint64(i*37) % 128
		img.add(old, d)
		copy(want[int64(old)*chunk:], d)
	}
	cow := tempFile(t, img.size)
	if err := os.WriteFile(cow, img.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSnapTable(t, "snapshot", 256, orig, cow, "P", "0").resume()
	if got := s.mustRead(0, 128*chunk); !bytes.Equal(got, want) {
		t.Fatalf("snapshot differs at byte %d", firstDiff(got, want))
	}
	if got, wantS := s.tg.Status(StatusInfo), "138/160 6"; got != wantS {
		t.Errorf("status %q, want %q", got, wantS)
	}
}

// A header dm marked invalid loads as an invalid snapshot; a header that
// is not a snapshot's is refused.
func TestSnapshotLoadsInvalidAndRefusesCorrupt(t *testing.T) {
	orig := fillPattern(t, 64<<10, 3)
	img := &cowImage{chunk: 4096, size: 64 << 10, invalid: true}
	cow := tempFile(t, img.size)
	if err := os.WriteFile(cow, img.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSnapTable(t, "snapshot", 128, orig, cow, "P", "8")
	if got := s.tg.Status(StatusInfo); got != "Invalid" {
		t.Errorf("status %q, want Invalid", got)
	}
	if _, err := s.read(0, 512); !errors.Is(err, ErrSnapInvalid) {
		t.Errorf("read of an invalid snapshot: %v", err)
	}
	bad := tempFile(t, 64<<10)
	f, err := os.OpenFile(bad, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte("not a snapshot"), 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	devs := NewDevSet(false)
	defer devs.Close()
	if _, err := newSnapshot([]string{orig, bad, "P", "8"}, 128, devs); !errors.Is(err, ErrSnapCorrupt) {
		t.Errorf("corrupt header: %v, want ErrSnapCorrupt", err)
	}
}

// A header whose chunk size leaves no room for metadata area 0 (a 1 MiB
// COW claiming 1 GiB chunks) is refused at load, as dm fails to read the
// area, and costs no chunk-sized buffer: loaded, it allocated 1 GiB and
// read as a valid snapshot with more sectors allocated than the device has.
func TestSnapshotRefusesHeaderChunkPastDevice(t *testing.T) {
	orig := fillPattern(t, 64<<10, 6)
	cow := tempFile(t, 1<<20)
	h := snapHeader{magic: snapMagic, valid: 1, version: snapDiskVersion, chunkSectors: 1 << 21}
	if err := os.WriteFile(cow, h.encode(SectorSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cow, 1<<20); err != nil {
		t.Fatal(err)
	}
	devs := NewDevSet(false)
	defer devs.Close()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	_, err := newSnapshot([]string{orig, cow, "P", "0"}, 128, devs)
	runtime.ReadMemStats(&b)
	if !errors.Is(err, ErrSnapCorrupt) || !errors.Is(err, ErrDeviceTooSmall) {
		t.Errorf("1 GiB chunks on a 1 MiB COW: %v, want ErrSnapCorrupt and ErrDeviceTooSmall", err)
	}
	if d := b.TotalAlloc - a.TotalAlloc; d > 64<<20 {
		t.Errorf("loading a 1 MiB COW allocated %d MiB", d>>20)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// On a COW device full of old garbage, a store that fills its first area
// zeroes the second before the first is full on disk, so that it loads.
func TestSnapshotZeroesTheNextArea(t *testing.T) {
	const chunk = 1024
	orig := fillPattern(t, 128*chunk, 12)
	before := readFile(t, orig)
	cow := tempFile(t, 0)
	garbage := bytes.Repeat([]byte{0xFF}, 100*chunk)
	clear(garbage[:chunk]) // a zero magic: a new store
	if err := os.WriteFile(cow, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	o := newSnapTable(t, "snapshot-origin", 256, orig)
	s := newSnapTable(t, "snapshot", 256, orig, cow, "P", "2").resume()
	for c := range int64(64) {
		o.mustWrite([]byte{1}, c*chunk, 0)
	}
	s.destroy()
	s = newSnapTable(t, "snapshot", 256, orig, cow, "P", "2").resume()
	if got := s.mustRead(0, 64*chunk); !bytes.Equal(got, before[:64*chunk]) {
		t.Fatalf("reloaded snapshot differs at byte %d", firstDiff(got, before))
	}
}
