package nbdserver

import (
	"testing"

	"golang.org/x/sys/unix"
)

// A pipe the export declined to fill goes back to the pool for the next
// read; one that holds part of a range is closed (its bytes must never
// reach another reply).
func TestPipePutIfEmpty(t *testing.T) {
	pp := &pipePool{max: 4}
	defer pp.close()
	p := pp.get()
	if p == nil {
		t.Fatal("no pipe")
	}
	pp.putIfEmpty(p)
	if q := pp.get(); q != p {
		t.Fatal("an empty pipe was not kept for reuse")
	}
	if _, err := unix.Write(p.w, []byte("x")); err != nil {
		t.Fatal(err)
	}
	pp.putIfEmpty(p)
	if len(pp.idle) != 0 || pp.Open() != 0 {
		t.Fatalf("a pipe holding data was kept: %d idle, %d open", len(pp.idle), pp.Open())
	}
}
