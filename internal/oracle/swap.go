package oracle

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// swapDisks gives side A's first n backing devices side B's contents and
// B's A's, so that what each side wrote (a COW device above all) is loaded
// and read by the other in a case's second half.
func (rn *Runner) swapDisks(n int) error {
	for i := 0; i < n; i++ {
		pa, pb := rn.A.Disks()[i], rn.B.Disks()[i]
		a, err := rn.readDisk(pa)
		if err != nil {
			return err
		}
		b, err := rn.readDisk(pb)
		if err != nil {
			return err
		}
		if err := rn.writeDisk(pa, b); err != nil {
			return err
		}
		if err := rn.writeDisk(pb, a); err != nil {
			return err
		}
	}
	return nil
}

// writeDisk writes p to the start of a backing device and syncs it.
func (rn *Runner) writeDisk(path string, p []byte) error {
	d, err := OpenDevice(path, rn.Direct)
	if err != nil {
		return err
	}
	defer d.Close()
	for off := 0; off < len(p); off += maxIO {
		buf := d.buf[:min(maxIO, len(p)-off)]
		copy(buf, p[off:])
		if _, err := unix.Pwrite(d.fd, buf, int64(off)); err != nil {
			return fmt.Errorf("write %s at %d: %w", path, off, err)
		}
	}
	return unix.Fdatasync(d.fd)
}
