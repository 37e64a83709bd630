package oracle

import (
	"fmt"
	"slices"
	"strings"
)

// DiskSectors is the size of every backing disk in the guest (8 MiB): the
// tables below are written for it.
const DiskSectors = 16384

// DiskBytes is DiskSectors in bytes.
const DiskBytes = DiskSectors * 512

// Cases are the fixed cases: every target gdm has, with the boundaries
// its mapping can get wrong (the fault targets' are in cases_faults.go).
// Each runs Standard(Seed) unless it has its own script.
func Cases() []Case {
	p := Pattern
	return append([]Case{
		{Name: "linear-whole", Seed: 1, Devs: []Init{p(11)},
			Table: "0 16384 linear $0 0"},
		{Name: "linear-offset", Seed: 2, Devs: []Init{p(12)},
			Table: "0 8000 linear $0 4321"},
		{Name: "linear-row", Seed: 3, Devs: []Init{p(13), Zeros, p(14)}, Table: `
0 3000 linear $0 100
3000 5000 linear $1 0
8000 1 linear $0 9000
8001 4095 linear $2 7
12096 4000 linear $0 12000`},
		{Name: "striped-2x8", Seed: 4, Devs: []Init{p(15), p(16)},
			Table: "0 32768 striped 2 8 $0 0 $1 0"},
		{Name: "striped-3x128", Seed: 5, Devs: []Init{p(17), Zeros, p(18)},
			Table: "0 15360 striped 3 128 $0 0 $1 1000 $2 11264"},
		{Name: "striped-4x1024", Seed: 6, Devs: []Init{p(19), p(20), Zeros, p(21)},
			Table: "0 12288 striped 4 1024 $0 0 $1 2048 $2 13312 $3 5"},
		{Name: "striped-7x1024", Seed: 7, Devs: []Init{p(22), p(23), p(24), p(25), p(26), p(27), p(28)},
			Table: "0 14336 striped 7 1024 $0 0 $1 7 $2 14336 $3 1 $4 100 $5 2048 $6 9"},
		{Name: "striped-7x8", Seed: 8, Devs: []Init{p(29), p(30), p(31), p(32), p(33), p(34), p(35)},
			Table: "0 14000 striped 7 8 $0 0 $1 1 $2 2 $3 3 $4 4 $5 5 $6 6"},
		{Name: "striped-3x24-not-pow2", Seed: 9, Devs: []Init{p(36), p(37), p(38)},
			Table: "0 14400 striped 3 24 $0 0 $1 24 $2 11"},
		{Name: "striped-2x3-odd", Seed: 10, Devs: []Init{p(39), p(40)},
			Table: "0 12000 striped 2 3 $0 0 $1 3"},
		{Name: "zero", Seed: 11, Table: "0 16384 zero"},
		{Name: "error", Seed: 12, Table: "0 16384 error"},
		{Name: "mixed", Seed: 13, Devs: []Init{p(41), p(42), Zeros, p(43)}, Table: `
0 2048 linear $0 0
2048 4096 striped 2 128 $1 0 $2 0
6144 1024 zero
7168 512 error
7680 4096 linear $0 2048
11776 3072 striped 3 8 $3 0 $1 2048 $2 2048
14848 1536 zero`},
		{Name: "linear-reload", Seed: 14, Devs: []Init{p(44), p(45)}, Table: "0 8192 linear $0 0",
			Script: reloadScript()},
	}, slices.Concat(faultCases(), CryptCases(), LogWritesCases(), LogWritesPlacedCases(), SnapshotCases(), SnapshotMergeCases(), Cases4K(), DiscardDevCases(), StackedCases())...)
}

// reloadScript writes, suspends and resumes, reloads the device onto the
// other disk (with an offset), and reads and writes the new mapping.
func reloadScript() []Op {
	return []Op{
		{Kind: Write, Off: 4096, Len: 1 << 20, Seed: 100},
		{Kind: Suspend}, {Kind: Resume},
		{Kind: Read, Off: 0, Len: 2 << 20},
		{Kind: Reload, Arg: "0 8192 linear $1 77"}, {Kind: Resume},
		{Kind: Read, Off: 0, Len: 4 << 20},
		{Kind: Write, Off: 512, Len: 8192, Seed: 101},
		{Kind: Read, Off: 0, Len: 4 << 20},
	}
}

// Generated is a case made from seed alone: up to six targets of random
// types (zero, error, linear, striped, and the remapping forms of crypt,
// delay and flakey), lengths, stripe counts, chunk sizes and offsets over
// up to four disks, and the standard script. A mix is what tests how a
// table answers as a whole: a request that crosses targets, and whether
// the device takes a discard or a write-zeroes at all (dm takes one only
// if every target does). The harness runs one per run from a fresh seed and
// prints it; the same seed makes the same case again.
func Generated(seed uint64) Case {
	r := &rng{s: seed}
	const ndev = 4
	devs := make([]Init, ndev)
	for i := range devs {
		if r.intn(3) > 0 {
			devs[i] = Pattern(r.next())
		}
	}
	used := make([]int64, ndev) // sectors of each disk taken so far
	var lines []string
	start := int64(0)
	for t := 0; t < 1+int(r.intn(6)); t++ {
		line, length := genTarget(r, used)
		if length == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("%d %d %s", start, length, line))
		start += length
	}
	if len(lines) == 0 {
		lines = []string{"0 8 zero"}
	}
	return Case{Name: fmt.Sprintf("generated-%d", seed), Seed: seed, Devs: devs, Table: strings.Join(lines, "\n")}
}

// GeneratedSeeds are the seeds of n generated cases, the first seed itself
// (so that a printed seed replays its case alone) and the others drawn
// from it: consecutive seeds would make overlapping cases.
func GeneratedSeeds(seed uint64, n int) []uint64 {
	seeds := make([]uint64, 0, max(n, 0))
	for i := 0; i < n; i++ {
		seeds = append(seeds, mix(seed, uint64(i))>>1)
	}
	if n > 0 {
		seeds[0] = seed
	}
	return seeds
}

// chunks are the chunk sizes a generated striped target draws from.
var chunks = []int64{1, 3, 8, 24, 128, 1000, 1024}

// genTarget makes one target ("type args") and its length, taking its
// room on the disks from used; a length of 0 when nothing fits.
func genTarget(r *rng, used []int64) (string, int64) {
	take := func(n int64) (int, int64, bool) { // a disk with n sectors free, and where
		d := int(r.intn(int64(len(used))))
		if used[d]+n > DiskSectors {
			return 0, 0, false
		}
		off := used[d] + r.intn(min(64, DiskSectors-used[d]-n+1))
		used[d] = off + n
		return d, off, true
	}
	switch r.intn(8) {
	case 0:
		return "zero", 1 + r.intn(4096)
	case 1:
		return "error", 1 + r.intn(256)
	case 2, 3, 4, 5:
		n := 1 + r.intn(4096)
		kind := r.intn(4)
		d, off, ok := take(n)
		if !ok {
			return "", 0
		}
		return remapTarget(r, kind, d, off), n
	}
	stripes := 2 + r.intn(4)
	chunk := chunks[r.intn(int64(len(chunks)))]
	perLeg := chunk * (1 + r.intn(max(1, 2048/chunk)))
	args := fmt.Sprintf("striped %d %d", stripes, chunk)
	for i := int64(0); i < stripes; i++ {
		d, off, ok := take(perLeg)
		if !ok {
			return "", 0
		}
		args += fmt.Sprintf(" $%d %d", d, off)
	}
	return args, stripes * perLeg
}

// remapTarget is a target that maps its range onto disk d from sector
// off: linear (kind 0), crypt (1: either cipher dm's cases use, a random
// iv_offset, allow_discards or not), delay with no delay (2), or flakey
// always up (3).
func remapTarget(r *rng, kind int64, d int, off int64) string {
	switch kind {
	case 1:
		cipher := "aes-xts-plain64 " + cryptKey512
		if r.intn(2) == 0 {
			cipher = "aes-cbc-essiv:sha256 " + cryptKey256
		}
		line := fmt.Sprintf("crypt %s %d $%d %d", cipher, r.intn(1<<20), d, off)
		if r.intn(2) == 0 {
			line += " 1 allow_discards"
		}
		return line
	case 2:
		return fmt.Sprintf("delay $%d %d 0", d, off)
	case 3:
		return fmt.Sprintf("flakey $%d %d 3600 1", d, off)
	}
	return fmt.Sprintf("linear $%d %d", d, off)
}
