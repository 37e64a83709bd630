// Package btree is gdm's sector index: the immutable B-tree that Linux's
// dm-table.c builds over a table's targets.
//
// Every node is one 64-byte cache line of KeysPerNode sector keys. Leaves hold
// the last sector of each target in order, padded with MaxKey; an internal
// node's key k is the highest sector reachable through its child k. A lookup
// walks one node per level, scanning eight keys that share a cache line, so a
// million targets cost seven cache lines at most.
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
	// cacheLine is the node size dm-table.c uses (L1_CACHE_BYTES on x86).
	cacheLine = 64
	// KeysPerNode is how many 8-byte sector keys fill one node.
	KeysPerNode = cacheLine / 8
	// ChildrenPerNode is the fan-out of an internal node.
	ChildrenPerNode = KeysPerNode + 1
	// MaxKey pads the unused keys of the last leaf (and of internal nodes).
	MaxKey = ^uint64(0)
)

// ErrNotAscending is returned by Build when the keys do not strictly ascend.
var ErrNotAscending = errors.New("btree: keys must strictly ascend")

// Index maps a sector to the index of the target that holds it.
type Index struct {
	// levels[0] is the root level, levels[depth-1] the leaves; each level is
	// a whole number of nodes of KeysPerNode keys.
	levels [][]uint64
	n      int    // number of targets
	last   uint64 // last sector of the last target
}

// Build makes the index from the last sector of each target, in order. The
// keys must strictly ascend; an empty key list gives an index on which every
// lookup is out of range.
func Build(lastSectors []uint64) (*Index, error) {
	for i := 1; i < len(lastSectors); i++ {
		if lastSectors[i] <= lastSectors[i-1] {
			return nil, fmt.Errorf("%w: key %d (%d) after %d", ErrNotAscending, i, lastSectors[i], lastSectors[i-1])
		}
	}
	ix := &Index{n: len(lastSectors)}
	if ix.n == 0 {
		return ix, nil
	}
	ix.last = lastSectors[ix.n-1]

	// Node counts per level, leaves first, as dm_table_build_index does.
	counts := []int{divUp(ix.n, KeysPerNode)}
	for counts[len(counts)-1] > 1 {
		counts = append(counts, divUp(counts[len(counts)-1], ChildrenPerNode))
	}
	depth := len(counts)
	total := 0
	for _, c := range counts {
		total += c * KeysPerNode
	}
	// One allocation for all levels, aligned so every node is one cache line.
	keys := alignedKeys(total)
	ix.levels = make([][]uint64, depth)
	off := 0
	for l := 0; l < depth; l++ {
		c := counts[depth-1-l]
		ix.levels[l] = keys[off : off+c*KeysPerNode : off+c*KeysPerNode]
		off += c * KeysPerNode
	}

	leaves := ix.levels[depth-1]
	copy(leaves, lastSectors)
	for i := ix.n; i < len(leaves); i++ {
		leaves[i] = MaxKey
	}
	// Internal levels: key k of node n is high(child n*ChildrenPerNode+k).
	for l := depth - 2; l >= 0; l-- {
		level := ix.levels[l]
		for node := 0; node < len(level)/KeysPerNode; node++ {
			for k := 0; k < KeysPerNode; k++ {
				level[node*KeysPerNode+k] = ix.high(l+1, node*ChildrenPerNode+k)
			}
		}
	}
	return ix, nil
}

// high is the highest key under node n of level l, as dm-table.c's high():
// follow the last child down to the leaves; a chain that runs past the
// existing leaves means the subtree is open-ended, so MaxKey.
func (ix *Index) high(l, n int) uint64 {
	for ; l < len(ix.levels)-1; l++ {
		n = n*ChildrenPerNode + ChildrenPerNode - 1
	}
	leaves := ix.levels[l]
	if n >= len(leaves)/KeysPerNode {
		return MaxKey
	}
	return leaves[n*KeysPerNode+KeysPerNode-1]
}

// Len is the number of targets indexed.
func (ix *Index) Len() int { return ix.n }

// Depth is the number of levels, leaves included.
func (ix *Index) Depth() int { return len(ix.levels) }

// Lookup returns the index of the target that holds sector, and false when
// the sector lies past the last target.
func (ix *Index) Lookup(sector uint64) (int, bool) {
	if ix.n == 0 || sector > ix.last {
		return 0, false
	}
	node := 0
	last := len(ix.levels) - 1
	for l := 0; l < last; l++ {
		k := searchNode(ix.levels[l][node*KeysPerNode:node*KeysPerNode+KeysPerNode], sector)
		node = node*ChildrenPerNode + k
	}
	k := searchNode(ix.levels[last][node*KeysPerNode:node*KeysPerNode+KeysPerNode], sector)
	return node*KeysPerNode + k, true
}

// searchNode returns the first k with keys[k] >= sector. The count of keys
// below sector is the same thing for ascending keys, and counting needs no
// branches the CPU can mispredict.
func searchNode(keys []uint64, sector uint64) int {
	_ = keys[KeysPerNode-1]
	k := 0
	for i := 0; i < KeysPerNode; i++ {
		k += b2i(keys[i] < sector)
	}
	return k
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func divUp(a, b int) int { return (a + b - 1) / b }

// alignedKeys returns n keys starting on a cache-line boundary.
func alignedKeys(n int) []uint64 {
	buf := make([]uint64, n+KeysPerNode)
	skip := 0
	if r := uintptr(unsafe.Pointer(&buf[0])) % cacheLine; r != 0 {
		skip = int((cacheLine - r) / 8)
	}
	return buf[skip : skip+n : skip+n]
}
