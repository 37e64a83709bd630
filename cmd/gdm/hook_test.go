package main

import (
	"runtime"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/pkg/table"
)

// setDestroyHookForTest calls f with the stack of every table destroy.
func setDestroyHookForTest(t *testing.T, f func(stack string)) {
	var mu sync.Mutex
	table.SetDestroyHook(func(*table.Table) {
		buf := make([]byte, 64<<10)
		n := runtime.Stack(buf, false)
		mu.Lock()
		defer mu.Unlock()
		f(string(buf[:n]))
	})
	t.Cleanup(func() { table.SetDestroyHook(nil) })
}
