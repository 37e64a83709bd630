package e2e

import (
	"fmt"
	"testing"

	"github.com/gdm-project/gdm/internal/oracle"
	"github.com/gdm-project/gdm/internal/testkit"
)

// oracle4K is how many disks of 4096-byte logical (and physical) blocks
// each side has, besides its oracleDisks of 512 bytes: the cases with
// FourK (internal/oracle/cases_4k.go) stack dm's block size rules on them.
// Their serials are dm4kN and gdm4kN, so the 512-byte disks keep theirs.
const oracle4K = 2

// oracle4KDisks are qemu's arguments for both sides' 4K disks, made as
// sparse images in dir.
func oracle4KDisks(t *testing.T, dir string) []string {
	serial := func(side string, i int) string { return fmt.Sprintf("%s4k%d", side, i) }
	return guestDisks(t, dir, serial, oracle4K, ",discard=unmap", ",logical_block_size=4096,physical_block_size=4096")
}

// guestDisks are qemu's arguments for n virtio disks per side (dm's, then
// gdm's), each a sparse image in dir named and serialled serial(side, i),
// with a write-back cache (cache=unsafe: oracleguest checks it, and the
// log-writes cases need it); driveOpts and deviceOpts are added to their
// -drive and -device.
func guestDisks(t *testing.T, dir string, serial func(side string, i int) string, n int, driveOpts, deviceOpts string) []string {
	var args []string
	for _, side := range []string{"dm", "gdm"} {
		for i := 0; i < n; i++ {
			id := serial(side, i)
			img := testkit.Sparse(t, dir, id+".img", oracle.DiskBytes)
			args = append(args, "-drive", "file="+img+",format=raw,if=none,id="+id+",cache=unsafe"+driveOpts,
				"-device", "virtio-blk-pci,drive="+id+",serial="+id+deviceOpts)
		}
	}
	return args
}
