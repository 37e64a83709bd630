package targets

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// badBlocks is dust's bad-block list: a set of block numbers kept sorted
// (dm keeps an rbtree) so that "is any block of this range bad" is a binary
// search and listbadblocks prints in order. Each entry carries the number of
// writes to it that still fail before one removes it. The mutex is held
// for list operations only, never across I/O. Its size is bounded by the
// device's block count (a message naming a block beyond it is refused);
// an insert moves the tail of the slice, cheap for the lists a test builds.
type badBlocks struct {
	mu     sync.Mutex
	blocks []badBlock // sorted by n, no duplicates
}

type badBlock struct {
	n      uint64
	wrFail uint8 // writes still to fail before one removes the block
}

// find is where block n is, or would be inserted.
func (b *badBlocks) find(n uint64) (int, bool) {
	return slices.BinarySearchFunc(b.blocks, n, func(e badBlock, n uint64) int {
		switch {
		case e.n < n:
			return -1
		case e.n > n:
			return 1
		}
		return 0
	})
}

// add puts block n on the list; false if it was there already.
func (b *badBlocks) add(n uint64, wrFail uint8) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, found := b.find(n)
	if found {
		return false
	}
	b.blocks = slices.Insert(b.blocks, i, badBlock{n: n, wrFail: wrFail})
	return true
}

// remove takes block n off the list; false if it was not on it.
func (b *badBlocks) remove(n uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, found := b.find(n)
	if found {
		b.blocks = slices.Delete(b.blocks, i, i+1)
	}
	return found
}

func (b *badBlocks) has(n uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, found := b.find(n)
	return found
}

func (b *badBlocks) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.blocks)
}

// clear empties the list and says how many blocks it held.
func (b *badBlocks) clear() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.blocks)
	b.blocks = nil
	return n
}

// list is the block numbers in order, one a line, each line ending in a
// newline ("" for an empty list).
func (b *badBlocks) list() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, e := range b.blocks {
		sb.WriteString(strconv.FormatUint(e.n, 10))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// anyIn is the first bad block in [first, last], if there is one.
func (b *badBlocks) anyIn(first, last uint64) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, _ := b.find(first)
	if i < len(b.blocks) && b.blocks[i].n <= last {
		return b.blocks[i].n, true
	}
	return 0, false
}

// written applies dm's rule for a write piece judged by block n: if n is
// listed with writes still to fail, one is counted down and the piece
// fails (true); if it is listed without, it leaves the list (the disk
// remapped it) and the piece is written.
func (b *badBlocks) written(n uint64) (fails bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, found := b.find(n)
	switch {
	case !found:
		return false
	case b.blocks[i].wrFail > 0:
		b.blocks[i].wrFail--
		return true
	}
	b.blocks = slices.Delete(b.blocks, i, i+1)
	return false
}
