package oracle

import (
	"sort"
	"strconv"
	"strings"
)

// sizes are the request sizes a script draws from: one sector up to the
// 4 MiB a request may be, with odd ones between.
var sizes = []int64{512, 1024, 3584, 4096, 8192, 65536, 135168, 1 << 20, 4 << 20}

// Boundaries reads a table's size and the byte offsets where it changes
// target, stripe chunk or stripe row: the places a mapping goes wrong.
func Boundaries(table string) (size int64, bounds []int64) {
	seen := map[int64]bool{}
	add := func(sector int64) {
		if !seen[sector] {
			seen[sector] = true
			bounds = append(bounds, sector*512)
		}
	}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		start, _ := strconv.ParseInt(f[0], 10, 64)
		length, _ := strconv.ParseInt(f[1], 10, 64)
		if start > 0 {
			add(start)
		}
		size = max(size, (start+length)*512)
		if f[2] != "striped" || len(f) < 5 {
			continue
		}
		stripes, _ := strconv.ParseInt(f[3], 10, 64)
		chunk, _ := strconv.ParseInt(f[4], 10, 64)
		if chunk <= 0 {
			continue
		}
		for _, k := range []int64{1, 2, 3, stripes - 1, stripes, stripes + 1, 2 * stripes, length/chunk - 1} {
			if k > 0 && k*chunk < length {
				add(start + k*chunk)
			}
		}
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i] < bounds[j] })
	return size, bounds
}

// Standard is the script most cases run, made from seed: for each
// boundary a write and a read that cross it (of sizes from two sectors to
// 4 MiB), one-sector writes and reads either side of one, a 4 MiB write and
// read, a discard, a write-zeroes and a FUA write
// across boundaries, a flush, and at the end a read of the whole device.
func Standard(seed uint64, table string) []Op {
	size, bounds := Boundaries(table)
	r := &rng{s: seed}
	var ops []Op
	cross := func(kind OpKind, b int64) Op {
		n := min(max(sizes[r.intn(int64(len(sizes)))], 1024), size) // two sectors at least, to cross
		off := b - 512*(1+r.intn(max(n/512-1, 1)))
		off = max(0, min(off, size-n))
		return Op{Kind: kind, Off: off, Len: n, Seed: r.next()}
	}
	bound := func() int64 {
		if len(bounds) == 0 {
			return 512 * r.intn(size/512)
		}
		return bounds[r.intn(int64(len(bounds)))]
	}
	for _, b := range bounds {
		ops = append(ops, cross(Write, b), cross(Read, b))
	}
	for i := 0; i < 4; i++ {
		ops = append(ops, cross(Write, bound()))
	}
	ops = append(ops, cross(Write, 512*r.intn(size/512)))
	if b := bound(); b >= 512 { // one sector each side of a boundary
		ops = append(ops, Op{Kind: Write, Off: b - 512, Len: 512, Seed: r.next()}, Op{Kind: Read, Off: b - 512, Len: 512},
			Op{Kind: WriteFUA, Off: b, Len: min(512, size-b), Seed: r.next()}, Op{Kind: Read, Off: b - 512, Len: min(1024, size-b+512)})
	}
	big := min(int64(4<<20), size)
	at := 4096 * r.intn((size-big)/4096+1)
	ops = append(ops, Op{Kind: Write, Off: at, Len: big, Seed: r.next()}, Op{Kind: Read, Off: at, Len: big})
	d := cross(Discard, bound())
	z := cross(WriteZeroes, bound())
	f := cross(WriteFUA, bound())
	ops = append(ops, d, Op{Kind: Read, Off: d.Off, Len: d.Len}, z, Op{Kind: Read, Off: z.Off, Len: z.Len},
		f, Op{Kind: Flush}, Op{Kind: Read, Off: f.Off, Len: f.Len})
	return append(ops, ReadAll(size)...)
}

// ReadAll reads the whole device, a MiB at a time.
func ReadAll(size int64) []Op {
	var ops []Op
	for off := int64(0); off < size; off += 1 << 20 {
		ops = append(ops, Op{Kind: Read, Off: off, Len: min(1<<20, size-off)})
	}
	return ops
}
