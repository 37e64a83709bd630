package main

import (
	"golang.org/x/sys/unix"
)

// A daemon that serves block devices must never wait, while it allocates
// memory, for pages of a device it serves to be written back: with a gdm
// device attached on the same host (gdm attach, nbd-client), reclaim under
// memory pressure may pick dirty pages of that /dev/nbdX, whose writeback
// waits for gdm, which waits for the memory. The kernel's answer for
// userspace I/O servers is PR_SET_IO_FLUSHER (Linux 5.6): a flagged
// thread's allocations never start I/O to reclaim (as with GFP_NOIO), and
// it is not throttled for other tasks' dirty pages.
//
// The flag is per thread. A new thread inherits it from the thread that
// created it, and execve keeps it; Go starts threads on its own, and with
// cgo linked it cannot make a system call on all of them
// (syscall.AllThreadsSyscall refuses). So gdm sets it on the one thread
// that re-executes the binary (see reexecPrepared): every thread of the
// new process descends from that one. Setting it needs CAP_SYS_RESOURCE;
// without it gdm says so and serves on unflagged.

// ioFlusherMarked reports whether the calling thread is an I/O flusher.
func ioFlusherMarked() bool {
	r, err := unix.PrctlRetInt(unix.PR_GET_IO_FLUSHER, 0, 0, 0, 0)
	return err == nil && r == 1
}

// markIOFlusher makes the calling thread an I/O flusher; the caller has
// locked its goroutine to that thread.
func markIOFlusher() error {
	return unix.Prctl(unix.PR_SET_IO_FLUSHER, 1, 0, 0, 0)
}
