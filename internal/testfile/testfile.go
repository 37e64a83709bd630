// Package testfile holds file helpers shared by the tests of several
// packages (unit tests and e2e alike).
package testfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Sparse makes a sparse file of size bytes in dir and returns its path.
func Sparse(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}
