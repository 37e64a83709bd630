package targets

import (
	"fmt"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// devMap is a shared mapping of a snapshot's COW device, for reads and
// rewrites of many small stretches of it: a 1 MiB request over chunks that
// 4 KiB writes left at random COW chunks is up to 256 runs, and a pread
// each costs several times its 4 KiB copy (the system call, on this kind
// of VM about 2 µs, where the copy takes well under one). Copying from the
// mapping costs the copy alone once its pages are mapped.
//
// The mapping sees every write to the device at once (one page cache),
// so it reads what pread would, and a write to it dirties the page cache
// as pwrite does (an fdatasync writes it back). What it costs: a page not in memory is
// read by a page fault, which holds the goroutine's P for the read where
// a pread would hand the P on; so only requests of several runs use it
// (scatteredRuns), and a device whose pages are cold pays that latency.
// A fault that cannot be served (the file shrank under gdm, an I/O error)
// is a SIGBUS, turned into a panic by debug.SetPanicOnFault and into EIO
// by guard.
type devMap struct {
	dev      *Dev
	b        []byte
	writable bool // mapped for writing too (the device is open read-write)
}

// mapDev maps a local device whole, or returns nil (a remote device, an
// empty one, or mmap refused): the caller then reads with pread.
func mapDev(d *Dev) *devMap {
	if d.remote != nil || d.size <= 0 || int64(int(d.size)) != d.size {
		return nil
	}
	prot := unix.PROT_READ
	if !d.readOnly {
		prot |= unix.PROT_WRITE
	}
	b, err := unix.Mmap(d.fd, 0, int(d.size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &devMap{dev: d, b: b, writable: !d.readOnly}
}

// readAt fills p from off, as Dev.ReadAt; a range past the mapping's end
// is ErrShortIO.
func (m *devMap) readAt(p []byte, off int64) error {
	return m.guard("read", p, off, func(b []byte) { copy(p, b) })
}

// writeAt writes p at off, as Dev.WriteAt: into the page cache, as pwrite
// does, so that the device's Sync makes it durable the same way. Only for
// chunks that have their exception already (their blocks are allocated);
// a fault (no room after all, an I/O error) is EIO.
func (m *devMap) writeAt(p []byte, off int64) error {
	if !m.writable {
		return m.dev.WriteAt(p, off)
	}
	return m.guard("write", p, off, func(b []byte) { copy(b, p) })
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
