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
	var args []string
	for _, side := range []string{"dm", "gdm"} {
		for i := 0; i < oracle4K; i++ {
			id := fmt.Sprintf("%s4k%d", side, i)
			img := testkit.Sparse(t, dir, id+".img", oracle.DiskBytes)
			args = append(args, "-drive", "file="+img+",format=raw,if=none,id="+id+",cache=unsafe,discard=unmap",
				"-device", "virtio-blk-pci,drive="+id+",serial="+id+",logical_block_size=4096,physical_block_size=4096")
		}
	}
	return args
}
