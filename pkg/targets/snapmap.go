package targets

import (
	"fmt"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// devMap is a read-only shared mapping of a snapshot's COW device or of
// its origin, for reads of many small stretches of them: a 1 MiB request
// over chunks that 4 KiB writes left at random COW chunks is up to 256
// runs, and a pread each costs several times its 4 KiB copy (the system
// call, on this kind of VM about 2 µs, where the copy takes well under
// one); a request over chunks such writes left mapped here and there
// alternates between the two devices, a run of each at a time. Copying
// from the mapping costs the copy alone once its pages are mapped.
//
// The mapping sees every write to the device at once (one page cache), so
// it reads what pread would. What it costs: a page not in memory is read
// by a page fault, which holds the goroutine's P for the read where a
// pread would hand the P on; so only the runs after a request's first use
// it, and a device whose pages are cold pays that latency. A fault that
// cannot be served (the file shrank under gdm, an I/O error) is a SIGBUS,
// turned into a panic by debug.SetPanicOnFault and into EIO by guard.
//
// Writes do not go through it: after a sync (every commit, FUA and flush)
// the kernel write-protects the written pages again, and the fault that
// makes each writable costs more than the pwrite it would save (measured:
// BenchmarkSnapshot1M sprinkled-first, COW on ext4, 1.7-1.9 ms of CPU per
// MiB with pwrite, 3.5-4.6 with the mapping).
type devMap struct {
	dev *Dev
	b   []byte
}

// mapDev maps a local device whole, read-only, or returns nil (a remote
// device, an empty one, or mmap refused): the caller then uses pread.
func mapDev(d *Dev) *devMap {
	if d.remote != nil || d.size <= 0 || int64(int(d.size)) != d.size {
		return nil
	}
	b, err := unix.Mmap(d.fd, 0, int(d.size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &devMap{dev: d, b: b}
}

// readAt fills p from off, as Dev.ReadAt; a range past the mapping's end
// is ErrShortIO.
func (m *devMap) readAt(p []byte, off int64) error {
	return m.guard("read", p, off, func(b []byte) { copy(p, b) })
}

// guard runs f on the mapping's bytes for [off, off+len(p)), turning a
// fault in it into EIO.
func (m *devMap) guard(what string, p []byte, off int64, f func([]byte)) (err error) {
	if off < 0 || off > int64(len(m.b))-int64(len(p)) {
		return fmt.Errorf("%w: %s %s at %d (mapped)", ErrShortIO, what, m.dev.path, off)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = fmt.Errorf("targets: %s %s at %d (mapped): %v: %w", what, m.dev.path, off, r, syscall.EIO)
		}
	}()
	f(m.b[off : off+int64(len(p))])
	return nil
}

// unmap ends the mapping; no read may be running or follow.
func (m *devMap) unmap() {
	if m != nil {
		unix.Munmap(m.b)
		m.b = nil
	}
}
