package btree

import (
	"math"
	"unsafe"
)

// levels is the shape of the tree over n keys given by last, for Build:
// how many nodes each level has and which keys lie under each node.
type levels struct {
	n     int
	last  func(i int) uint64
	nodes [maxDepth]int // nodes of level l, root first
	unit  [maxDepth]int // leaf keys under one child of a node of level l
}

// count fills nodes and unit and returns the depth.
func (l *levels) count() int {
	var up [maxDepth]int // node counts, leaves first
	up[0] = divUp(l.n, KeysPerNode)
	depth := 1
	for up[depth-1] > 1 {
		up[depth] = divUp(up[depth-1], KeysPerNode)
		depth++
	}
	unit := 1
	for lv := depth - 1; lv >= 0; lv-- {
		l.nodes[lv], l.unit[lv] = up[depth-1-lv], unit
		unit *= KeysPerNode
	}
	return depth
}

// bounds returns the first sector under node j of level lv and the last
// sector of its last real key.
func (l *levels) bounds(lv, j int) (lo, hi uint64) {
	first := j * KeysPerNode * l.unit[lv]
	if first > 0 {
		lo = l.last(first-1) + 1
	}
	return lo, l.last(min(first+KeysPerNode*l.unit[lv], l.n) - 1)
}

// width is how many bytes a key of level lv needs: its widest node's span
// of sectors, relative to the node's first, must fit (padding, the type's
// largest value, then sorts at or after every sector a walk compares).
func (l *levels) width(lv int) int {
	var span uint64
	for j := range l.nodes[lv] {
		lo, hi := l.bounds(lv, j)
		span = max(span, hi-lo)
	}
	switch {
	case span <= math.MaxUint16:
		return 2
	case span <= math.MaxUint32:
		return 4
	}
	return 8
}

// fill lays out levels [from, to) with keys of type K, setting start[lv]
// for each: key c of node j is the last sector under child c relative to
// the node's first, or K's largest value for a child past the last key.
func fill[K key](l *levels, start []int, from, to int) []K {
	total := 0
	for lv := from; lv < to; lv++ {
		start[lv] = total
		total += l.nodes[lv] * KeysPerNode
	}
	if total == 0 {
		return nil
	}
	keys := aligned[K](total)
	for lv := from; lv < to; lv++ {
		u := l.unit[lv]
		for j := range l.nodes[lv] {
			lo, _ := l.bounds(lv, j)
			node := keys[start[lv]+j*KeysPerNode:][:KeysPerNode]
			for c := range node {
				node[c] = ^K(0)
				if first := (j*KeysPerNode + c) * u; first < l.n {
					node[c] = K(l.last(min(first+u, l.n)-1) - lo)
				}
			}
		}
	}
	return keys
}

func divUp(a, b int) int { return (a + b - 1) / b }

// aligned returns n keys starting on an align boundary.
func aligned[K key](n int) []K {
	size := int(unsafe.Sizeof(K(0)))
	buf := make([]K, n+align/size)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&buf[0])) % align); r != 0 {
		skip = (align - r) / size
	}
	return buf[skip : skip+n : skip+n]
}
