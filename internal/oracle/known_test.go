package oracle

import "testing"

// Only flakey lines lose their trailing blank, and only one.
func TestOldFlakeyBlank(t *testing.T) {
	in := "0 8 flakey $0 0 1 1 0 \n8 8 linear $1 0 \n16 8 flakey $0 8 1 1 1 drop_writes  \n"
	got, found := oldFlakeyBlank(in)
	if want := "0 8 flakey $0 0 1 1 0\n8 8 linear $1 0 \n16 8 flakey $0 8 1 1 1 drop_writes \n"; got != want || !found {
		t.Fatalf("oldFlakeyBlank = %q, %v", got, found)
	}
	if _, found := oldFlakeyBlank("0 8 flakey $0 0 1 1 0\n"); found {
		t.Fatal("no blank, yet found")
	}
}

// LaterReadCorrupt sets byte N of a successful read that long, and leaves
// shorter reads, failed reads and writes alone.
func TestLaterReadCorrupt(t *testing.T) {
	later := LaterReadCorrupt(3, 0xee)
	r := Result{Data: []byte{1, 2, 3, 4}}
	if n := later(Op{Kind: Read}, &r); n == "" || r.Data[2] != 0xee || r.Data[3] != 4 {
		t.Fatalf("read: %v %q", r.Data, n)
	}
	short := Result{Data: []byte{1, 2}}
	failed := Result{Err: "EIO"}
	if later(Op{Kind: Read}, &short) != "" || later(Op{Kind: Read}, &failed) != "" || later(Op{Kind: Write}, &Result{Data: []byte{1, 2, 3}}) != "" {
		t.Fatal("changed what it must not")
	}
}
