package targets

import (
	"errors"
	"testing"
)

// dm-stripe reads the stripe count and the chunk size with kstrtouint,
// into 32 bits: a chunk of 2^32 sectors or more is "Invalid chunk_size",
// whatever the target's length. gdm read 64 bits, and took a chunk of
// 2^32 sectors in a target long enough to hold one per leg.
func TestStripedChunkIsThirtyTwoBits(t *testing.T) {
	const chunk = 1 << 32
	_, err := checkStriped([]string{"1", "4294967296", "/a", "0"}, chunk)
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("chunk 2^32: %v, want ErrOverflow as dm's kstrtouint", err)
	}
	if _, err := checkStriped([]string{"1", "4294967295", "/a", "0"}, 1<<32-1); err != nil {
		t.Fatalf("chunk 2^32-1: %v, want it taken as dm takes it", err)
	}
}
