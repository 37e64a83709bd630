// Package btree is gdm's sector index: an immutable B+ tree over a table's
// targets, in the spirit of the one Linux's dm-table.c builds, laid out for
// few cache misses and few instructions per lookup.
//
// Every node has KeysPerNode keys and as many children. Leaves hold the last
// sector of each target in order. An internal node's key k is the highest
// sector under its child k, so no key is needed past the last child
// (dm-table.c's nodes have one child more than keys: a sector past every key
// of a node goes to that extra child; here the parent has already ruled that
// case out).
//
// Keys are stored relative to the first sector under their node, in the
// narrowest of 64, 32 or 16 bits that holds the widest span of sectors a
// node of their level covers: at a million targets of a few hundred sectors,
// the leaves are 16-bit (a node is half a cache line, 2 MB in all where
// absolute 64-bit keys would take 8) and the levels above 32-bit. A span
// never grows going down, so the levels are grouped root first: 64-bit ones,
// then 32-bit, then 16-bit, each group in one allocation aligned to 128
// bytes (the adjacent-line prefetch's pair), each level a whole number of
// nodes, padded with the group's largest key.
//
// A lookup walks one node per level with a branchless binary search (four
// compare-and-selects for 16 keys) and carries the first sector of the node
// down. The walk has no branch that depends on the data, so the CPU overlaps
// the cache misses of consecutive lookups instead of stalling on a
// mispredicted branch in each.
//
// An Index is built once and never changes, so any number of goroutines may
// call Lookup concurrently without locking.
package btree

import (
	"errors"
	"fmt"
	"unsafe"
)

const (
	// KeysPerNode is how many keys make a node, and how many children an
	// internal node has.
	KeysPerNode = 16
	// align is where every group of levels starts: two cache lines.
	align = 128
	// maxDepth is more levels than 2^64 keys need.
	maxDepth = 17
)

// ErrNotAscending is returned by Build when the keys do not strictly ascend.
var ErrNotAscending = errors.New("btree: keys must strictly ascend")

// key is what a level's keys may be stored as.
type key interface{ uint16 | uint32 | uint64 }

// Index maps a sector to the index of the target that holds it.
type Index struct {
	// The levels, root first: [0, n64) in k64, [n64, n64+n32) in k32, the
	// rest in k16. width[l] is level l's key size in bytes, base* where
	// each group's keys are, for the lookup.
	k64                    []uint64
	k32                    []uint32
	k16                    []uint16
	n64, n32               int
	width                  [maxDepth]uint8
	base16, base32, base64 unsafe.Pointer
	// start[l] is where level l begins in its group's keys. A fixed array,
	// so a lookup reads it from the Index itself.
	start [maxDepth]int
	depth int
	n     int    // number of targets
	last  uint64 // last sector of the last target
}

// Build makes the index from the last sector of each target, in order. The
// keys must strictly ascend; an empty key list gives an index on which every
// lookup is out of range.
func Build(lastSectors []uint64) (*Index, error) {
	return BuildFunc(len(lastSectors), func(i int) uint64 { return lastSectors[i] })
}

// BuildFunc is Build with the n last sectors given by a function, for a
// caller that has them in another form: a big table need not make a slice
// of them only to have them copied.
func BuildFunc(n int, last func(i int) uint64) (*Index, error) {
	for i := 1; i < n; i++ {
		if a, b := last(i-1), last(i); b <= a {
			return nil, fmt.Errorf("%w: key %d (%d) after %d", ErrNotAscending, i, b, a)
		}
	}
	ix := &Index{n: n}
	if n == 0 {
		return ix, nil
	}
	ix.last = last(n - 1)
	l := levels{n: n, last: last}
	ix.depth = l.count()
	var bytes [maxDepth]int
	for lv := ix.depth - 1; lv >= 0; lv-- {
		bytes[lv] = l.width(lv)
		if lv+1 < ix.depth {
			bytes[lv] = max(bytes[lv], bytes[lv+1])
		}
		switch bytes[lv] {
		case 8:
			ix.n64++
		case 4:
			ix.n32++
		}
	}
	ix.k64 = fill[uint64](&l, ix.start[:], 0, ix.n64)
	ix.k32 = fill[uint32](&l, ix.start[:], ix.n64, ix.n64+ix.n32)
	ix.k16 = fill[uint16](&l, ix.start[:], ix.n64+ix.n32, ix.depth)
	ix.base64 = unsafe.Pointer(unsafe.SliceData(ix.k64))
	ix.base32 = unsafe.Pointer(unsafe.SliceData(ix.k32))
	ix.base16 = unsafe.Pointer(unsafe.SliceData(ix.k16))
	for lv := range ix.depth {
		ix.width[lv] = uint8(bytes[lv])
	}
	return ix, nil
}

// Len is the number of targets indexed.
func (ix *Index) Len() int { return ix.n }

// Depth is the number of levels, leaves included.
func (ix *Index) Depth() int { return ix.depth }

// Lookup returns the index of the target that holds sector, and false when
// the sector lies past the last target.
func (ix *Index) Lookup(sector uint64) (int, bool) {
	if sector > ix.last || ix.n == 0 {
		return 0, false
	}
	// i is the node's index within its level (after the leaves, the key's),
	// lo the node's first sector. A node is addressed without a bounds
	// check: fill sized every level to hold node i whole for any i a walk
	// can reach, and the check and the slicing would double the
	// instructions of a level. The switch on the width is the same for a
	// level on every lookup, so it predicts well.
	i, lo := 0, uint64(0)
	for l := range ix.depth {
		at := uintptr(ix.start[l] + i*KeysPerNode)
		// The sector relative to the node's first fits the level's keys:
		// the parent chose this node because its last key is at or past it.
		rel := sector - lo
		var k uint
		var before uint64 // the key before k: child k starts after it
		switch ix.width[l] {
		case 2:
			node := (*[KeysPerNode]uint16)(unsafe.Add(ix.base16, at*2))
			k = search16(node, uint16(rel))
			before = uint64(node[(k-1)%KeysPerNode])
		case 4:
			node := (*[KeysPerNode]uint32)(unsafe.Add(ix.base32, at*4))
			k = search32(node, uint32(rel))
			before = uint64(node[(k-1)%KeysPerNode])
		default:
			node := (*[KeysPerNode]uint64)(unsafe.Add(ix.base64, at*8))
			k = search64(node, rel)
			before = node[(k-1)%KeysPerNode]
		}
		lo += (before + 1) & -uint64(b2i(k > 0))
		i = i*KeysPerNode + int(k)
	}
	return i, true
}

// search16, search32 and search64 return the first k with node[k] >= rel,
// for a node whose last key is >= rel: a binary search in four halvings,
// each a compare whose flag is or-ed in (a SETcc; an if compiles to a jump
// that random sectors mispredict half the time). Three copies of one line,
// not a generic function: the compiler does not inline that one.
func search16(n *[KeysPerNode]uint16, rel uint16) uint {
	k := b2i(n[7] < rel) << 3
	k |= b2i(n[k|3] < rel) << 2
	k |= b2i(n[k|1] < rel) << 1
	return k | b2i(n[k] < rel)
}

func search32(n *[KeysPerNode]uint32, rel uint32) uint {
	k := b2i(n[7] < rel) << 3
	k |= b2i(n[k|3] < rel) << 2
	k |= b2i(n[k|1] < rel) << 1
	return k | b2i(n[k] < rel)
}

func search64(n *[KeysPerNode]uint64, rel uint64) uint {
	k := b2i(n[7] < rel) << 3
	k |= b2i(n[k|3] < rel) << 2
	k |= b2i(n[k|1] < rel) << 1
	return k | b2i(n[k] < rel)
}

// b2i compiles to a SETcc.
func b2i(b bool) uint {
	if b {
		return 1
	}
	return 0
}
