package oracle

import "encoding/binary"

// fill writes the pattern of seed into p, as it lies at byte offset off of
// the pattern's stream: any range can be made on its own, and the same range
// is always the same bytes (offsets are 8-byte aligned: sectors).
func fill(p []byte, seed uint64, off int64) {
	word := uint64(off) / 8
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], mix(seed^0x9e3779b97f4a7c15, word))
		word++
	}
}

// mix is splitmix64 of (seed, n): cheap, and no two nearby words alike, so
// a sector moved to the wrong place never matches by chance.
func mix(seed, n uint64) uint64 {
	z := seed + n*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rng is a small deterministic generator for scripts and generated cases.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s++
	return mix(r.s, 0x5851f42d4c957f2d)
}

// intn is uniform in [0, n).
func (r *rng) intn(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return int64(r.next() % uint64(n))
}
