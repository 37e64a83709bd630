// Package btree is gdm's sector index: an immutable B+ tree over a table's
// targets, in the spirit of the one Linux's dm-table.c builds, laid out for
// few cache misses and few instructions per lookup.
//
// Every node is KeysPerNode sector keys: two cache lines, aligned so the
// CPU's adjacent-line prefetch brings both in at once. Leaves hold the last
// sector of each target in order, padded with MaxKey. An internal node's key
// k is the highest sector under its child k, which is that child's own last
// key, so a node has KeysPerNode children and no key is stored twice over
// (dm-table.c's nodes have one child more than keys: a sector past every key
// of a node goes to that extra child; here the parent has already ruled that
// case out). Levels are stored root first in one allocation.
//
// A lookup walks one node per level with a branchless binary search (four
// compare-and-selects for 16 keys). A million targets are five levels, and
// the whole walk is some hundred instructions with no branch that depends
// on the data, so the CPU overlaps the cache misses of consecutive lookups
// instead of stalling on a mispredicted branch in each.
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
	// KeysPerNode is how many 8-byte sector keys make a node, and how many
	// children an internal node has: 16, two 64-byte cache lines.
	KeysPerNode = 16
	// nodeBytes is a node's size; nodes are aligned to it.
	nodeBytes = KeysPerNode * 8
	// MaxKey pads the unused keys of the last node of each level.
	MaxKey = ^uint64(0)
	// maxDepth is more levels than 2^64 keys need.
	maxDepth = 17
)

// ErrNotAscending is returned by Build when the keys do not strictly ascend.
var ErrNotAscending = errors.New("btree: keys must strictly ascend")

// Index maps a sector to the index of the target that holds it.
type Index struct {
	// keys holds every level, root first, each a whole number of nodes.
	keys []uint64
	// start[l] is where level l begins in keys; level depth-1 is the
	// leaves. A fixed array, so a lookup reads it from the Index itself.
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
	ix := &Index{n: n}
	if n == 0 {
		return ix, nil
	}
	ix.last = last(n - 1)

	// Node counts per level, leaves first.
	counts := []int{divUp(ix.n, KeysPerNode)}
	for counts[len(counts)-1] > 1 {
		counts = append(counts, divUp(counts[len(counts)-1], KeysPerNode))
	}
	ix.depth = len(counts)
	total := 0
	for l := 0; l < ix.depth; l++ {
		ix.start[l] = total
		total += counts[ix.depth-1-l] * KeysPerNode
	}
	ix.keys = alignedKeys(total)

	leaves := ix.level(ix.depth - 1)
	for i := range leaves {
		leaves[i] = MaxKey
		if i < n {
			leaves[i] = last(i)
		}
		if i > 0 && i < n && leaves[i] <= leaves[i-1] {
			return nil, fmt.Errorf("%w: key %d (%d) after %d", ErrNotAscending, i, leaves[i], leaves[i-1])
		}
	}
	// Key c of an internal level is the last key of node c one level down;
	// a child that does not exist is open-ended, so MaxKey.
	for l := ix.depth - 2; l >= 0; l-- {
		level, below := ix.level(l), ix.level(l+1)
		for c := range level {
			level[c] = MaxKey
			if end := (c+1)*KeysPerNode - 1; end < len(below) {
				level[c] = below[end]
			}
		}
	}
	return ix, nil
}

// level returns the keys of level l (0 is the root).
func (ix *Index) level(l int) []uint64 {
	end := len(ix.keys)
	if l+1 < ix.depth {
		end = ix.start[l+1]
	}
	return ix.keys[ix.start[l]:end:end]
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
	// i is the node's index within its level; after the leaves, the key's.
	// Build sized every level to hold node i whole for any i a walk can
	// reach, so the node is addressed without a bounds check: that check
	// and the slicing would double the instructions of a level.
	i := 0
	keys := unsafe.Pointer(unsafe.SliceData(ix.keys))
	for _, start := range ix.start[:ix.depth] {
		node := (*[KeysPerNode]uint64)(unsafe.Add(keys, (start+i*KeysPerNode)*8))
		// The first k with node[k] >= sector; the parent chose this node
		// because its last key is >= sector. A binary search in four
		// halvings, written inline (as a function it is not inlined), each
		// a compare whose flag is added in: a SETcc, where an if compiles
		// to a jump that random sectors mispredict half the time. The
		// masks cost an AND and prove the indexes in range.
		k := b2i(node[7] < sector) << 3
		k += b2i(node[(k+3)&(KeysPerNode-1)] < sector) << 2
		k += b2i(node[(k+1)&(KeysPerNode-1)] < sector) << 1
		k += b2i(node[k&(KeysPerNode-1)] < sector)
		i = i*KeysPerNode + k
	}
	return i, true
}

// b2i compiles to a SETcc.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func divUp(a, b int) int { return (a + b - 1) / b }

// alignedKeys returns n keys starting on a node boundary.
func alignedKeys(n int) []uint64 {
	buf := make([]uint64, n+KeysPerNode)
	skip := 0
	if r := uintptr(unsafe.Pointer(&buf[0])) % nodeBytes; r != 0 {
		skip = int((nodeBytes - r) / 8)
	}
	return buf[skip : skip+n : skip+n]
}
