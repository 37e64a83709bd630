package targets

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/pkg/nbdclient"
	"golang.org/x/sys/unix"
)

// What a backing device takes besides reads and writes. dm asks it of
// every device a target lists (dm_table_supports_discards and
// dm_table_supports_write_zeroes, through iterate_devices): a table whose
// target relies on a device without discard has no discard at all, and a
// BLKDISCARD on it is EOPNOTSUPP; likewise for write-zeroes. gdm asks the
// same of its devices, once, when it opens them:
//
//   - a block device: its queue's discard_max_bytes and
//     write_zeroes_max_bytes in sysfs, which the kernel sets to 0 for a
//     device that takes none (and an administrator may set
//     discard_max_bytes to 0 to turn discard off). Where sysfs cannot
//     say, the device is taken as capable, as gdm did before it asked.
//   - a regular file: capable of both, as the kernel's loop device over a
//     file is: gdm punches holes, and where the filesystem cannot, a trim
//     does nothing (a discard is advisory) and a zero writes zeros.
//   - a remote NBD export: what its handshake advertised
//     (NBD_FLAG_SEND_TRIM, NBD_FLAG_SEND_WRITE_ZEROES). The flags are
//     those of the first connection; a reconnection that changes them is
//     refused (nbdclient's changed.go).

// sysDevBlock is where sysfs lists block devices by major:minor.
var sysDevBlock = "/sys/dev/block"

// SupportsDiscard says whether the device takes discards (dm's
// device_not_discard_capable, negated).
func (d *Dev) SupportsDiscard() bool {
	if d.remote != nil {
		return d.remote.Info().Flags&nbdclient.FlagSendTrim != 0
	}
	return !d.noDiscard
}

// SupportsWriteZeroes says whether the device takes write-zeroes without
// being sent the zeros (dm's device_not_write_zeroes_capable, negated).
func (d *Dev) SupportsWriteZeroes() bool {
	if d.remote != nil {
		return d.remote.Info().Flags&nbdclient.FlagWriteZeroes != 0
	}
	return !d.noWriteZeroes
}

// learnBlockCaps reads a block device's discard and write-zeroes limits.
func (d *Dev) learnBlockCaps(rdev uint64) {
	d.noDiscard = queueLimit(rdev, "discard_max_bytes") == 0
	d.noWriteZeroes = queueLimit(rdev, "write_zeroes_max_bytes") == 0
}

// queueLimit is the number in the queue attribute name of block device
// rdev, or -1 when sysfs cannot say. A partition has no queue of its own
// (its directory sits in its disk's): its disk's answers for it, as the
// kernel's bdev_max_discard_sectors does.
func queueLimit(rdev uint64, name string) int64 {
	dir, err := filepath.EvalSymlinks(filepath.Join(sysDevBlock, fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))))
	if err != nil {
		return -1
	}
	for _, q := range []string{filepath.Join(dir, "queue"), filepath.Join(filepath.Dir(dir), "queue")} {
		b, err := os.ReadFile(filepath.Join(q, name))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}
