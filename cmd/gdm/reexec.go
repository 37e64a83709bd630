package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// reexecPrepared executes `gdm serve` once more, in place (same pid, same
// descriptors, so a supervisor sees no difference), when the process
// serving needs what only a new process gets: Go's sysmon reads GODEBUG
// only at start (sysmon.go), and the I/O flusher flag reaches every thread
// only from the thread that executes (ioflusher.go). The new process finds
// both in place and goes on without executing again. It returns when no
// exec is needed or the exec failed, having said why on stderr.
func reexecPrepared(steadySysmon, ioFlusher bool) {
	env := os.Environ()
	need := false
	if steadySysmon {
		if e := steadySysmonEnv(env); e != nil {
			env, need = e, true
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var flusherErr error
	if ioFlusher && !ioFlusherMarked() {
		if flusherErr = markIOFlusher(); flusherErr == nil {
			need = true
		}
	}
	if need {
		err := syscall.Exec("/proc/self/exe", os.Args, env)
		fmt.Fprintf(os.Stderr, "gdm: serving without re-executing (for GODEBUG=%s and the I/O flusher flag): %v\n", sysmonTrace, err)
		return
	}
	if flusherErr != nil {
		// Said only by a process that executes no further, so once.
		fmt.Fprintf(os.Stderr, "gdm: serving without PR_SET_IO_FLUSHER (%v; it needs CAP_SYS_RESOURCE and Linux 5.6): a device of this daemon attached on this host may deadlock under memory pressure; --io-flusher=false does without it quietly\n", flusherErr)
	}
}
