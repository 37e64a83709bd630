package oracle

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pfMemallocNoio is the task flag PR_SET_IO_FLUSHER sets, as the ninth
// field of /proc's stat shows it (include/linux/sched.h).
const pfMemallocNoio = 0x00080000

// checkIOFlusher fails unless every thread of pid is an I/O flusher. The
// guest's gdm serves the nbd devices the kernel attached on the same
// host, the case PR_SET_IO_FLUSHER exists for (cmd/gdm/ioflusher.go:
// reclaim waiting on writeback that waits on gdm), and it runs as root
// with every capability, so it must have set it; a host test process may
// lack CAP_SYS_RESOURCE, so this is the check that sees the flag set.
func checkIOFlusher(pid int) error {
	flagged, all, err := IOFlusherThreads(pid)
	if err == nil && flagged != all {
		err = fmt.Errorf("%d of gdm's %d threads are I/O flushers, want all: gdm serve did not set PR_SET_IO_FLUSHER", flagged, all)
	}
	return err
}

// IOFlusherThreads counts the threads of pid that are I/O flushers
// (PF_MEMALLOC_NOIO in /proc's stat), and all its threads.
func IOFlusherThreads(pid int) (flagged, all int, err error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return 0, 0, fmt.Errorf("threads of pid %d: %v", pid, err)
	}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that ended
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		flags, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: flags %q: %v", p, f[6], err)
		}
		all++
		if flags&pfMemallocNoio != 0 {
			flagged++
		}
	}
	return flagged, all, nil
}
