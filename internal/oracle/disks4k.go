package oracle

import (
	"fmt"
	"slices"
)

// The guest gives each side, besides its disks of 512-byte logical blocks,
// a few of 4096-byte blocks (qemu's logical_block_size=4096), where dm's
// block size rules show: a table's logical block size stacks its devices',
// and areas or target boundaries inside a device block are refused. A
// case or acceptance table names those disks by listing, in its FourK,
// which of its $N are to be 4K disks; its other $N stay the side's N-th
// 512-byte disk, so that every other case is as it was.
//
// The 4K disks are told apart by what they are (their logical block size,
// BLKSSZGET), not by their place in a side's list: a side's disk list is
// the guest's serials in order, and the 4K disks come after the others.

// diskView is a side whose backing devices $0, $1, ... are a case's
// choice of the side's disks (see pickDisks).
type diskView struct {
	Side
	disks []string
	names map[string]int
}

func (v diskView) Disks() []string          { return v.disks }
func (v diskView) DevNames() map[string]int { return v.names }

// unview is the side behind a view (a side as given otherwise): what its
// kind is asked of (a self run, where B is a second dm).
func unview(s Side) Side {
	if v, ok := s.(diskView); ok {
		return v.Side
	}
	return s
}

// isDM says whether s is the kernel's dm (side B is, in a self run).
func isDM(s Side) bool {
	_, ok := unview(s).(*DM)
	return ok
}

// pickDisks maps a case's n backing devices to the side's disks, given
// each disk's logical block size: $N in fourK is the next disk of 4096
// bytes (in fourK's order), any other $N the N-th disk of 512 bytes.
func pickDisks(blockSizes []int64, n int, fourK []int) ([]int, error) {
	var small, big []int
	for i, bs := range blockSizes {
		if bs == 4096 {
			big = append(big, i)
		} else {
			small = append(small, i)
		}
	}
	pick := make([]int, n)
	for i := range pick {
		k := slices.Index(fourK, i)
		switch {
		case k >= len(big):
			return nil, fmt.Errorf("$%d is to be a disk of 4 KiB blocks; the side has %d", i, len(big))
		case k >= 0:
			pick[i] = big[k]
		case i >= len(small):
			return nil, fmt.Errorf("$%d is to be a disk of 512-byte blocks; the side has %d", i, len(small))
		default:
			pick[i] = small[i]
		}
	}
	return pick, nil
}

// viewOf is s with the case's n backing devices chosen by fourK.
func (rn *Runner) viewOf(s Side, n int, fourK []int) (Side, error) {
	all := s.Disks()
	sizes := make([]int64, len(all))
	for i, p := range all {
		d, err := OpenDevice(p, false)
		if err != nil {
			return nil, err
		}
		sizes[i], err = d.LogicalBlockSize()
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	pick, err := pickDisks(sizes, n, fourK)
	if err != nil {
		return nil, err
	}
	v := diskView{Side: s, names: map[string]int{}}
	for _, j := range pick {
		v.disks = append(v.disks, all[j])
	}
	for name, j := range s.DevNames() {
		if i := slices.Index(pick, j); i >= 0 {
			v.names[name] = i
		}
	}
	return v, nil
}

// useFourK puts views of both sides in place for a case with 4K disks (a
// case without any keeps the sides as they are); restore puts the sides
// back.
func (rn *Runner) useFourK(n int, fourK []int) (restore func(), err error) {
	if len(fourK) == 0 {
		return func() {}, nil
	}
	a, err := rn.viewOf(rn.A, n, fourK)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rn.A.Name(), err)
	}
	b, err := rn.viewOf(rn.B, n, fourK)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rn.B.Name(), err)
	}
	oldA, oldB := rn.A, rn.B
	rn.A, rn.B = a, b
	return func() { rn.A, rn.B = oldA, oldB }, nil
}
