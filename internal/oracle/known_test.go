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

// Only a discard dm refuses as unsupported on a table with a crypt line
// that does not allow discards is kept from gdm.
func TestCryptNoDiscard(t *testing.T) {
	no := Result{Err: "ENOTSUP"}
	for _, c := range []struct {
		r     Result
		table string
		want  bool
	}{
		{no, "0 8 crypt aes-xts-plain64 k 0 $0 0", true},
		{no, "0 8 linear $0 0\n8 8 crypt aes k 0 $0 0 1 same_cpu_crypt", true},
		{no, "0 8 crypt aes k 0 $0 0 1 ALLOW_DISCARDS", false},
		{no, "0 8 linear $0 0", false},
		{Result{Err: "EIO"}, "0 8 crypt aes k 0 $0 0", false},
		{Result{}, "0 8 crypt aes k 0 $0 0", false},
	} {
		if got := cryptNoDiscard(c.r, c.table); got != c.want {
			t.Errorf("cryptNoDiscard(%v, %q) = %v", c.r, c.table, got)
		}
	}
}

// The flush gdm logs at disconnect folds away only where it stands just
// before the end mark, as one extra epoch; the unflushed writes before it
// then belong to the end mark's epoch, as in dm's log.
func TestFoldDiscFlush(t *testing.T) {
	end := "mark dm-log-writes-end"
	w := map[uint64]string{1: "x"}
	dm := []epoch{{end: "flush", sectors: w}, {end: end, sectors: w}, {}}
	gdm := []epoch{{end: "flush", sectors: w}, {end: "flush", sectors: w}, {end: end, sectors: map[uint64]string{}}, {}}
	got, ok := foldDiscFlush(dm, gdm)
	if !ok || compareEpochs(dm, got, false) != "" {
		t.Fatalf("not folded: %v %s", ok, ends(got))
	}
	if len(gdm) != 4 {
		t.Fatal("folding changed its input")
	}
	// A flush elsewhere, or one whose end-mark epoch has writes, stays.
	other := []epoch{{end: "flush", sectors: w}, {end: "flush"}, {end: "flush", sectors: w}, {end: end, sectors: w}}
	if _, ok := foldDiscFlush(dm, other); ok {
		t.Fatal("folded a flush that is not the disconnect's")
	}
	if _, ok := foldDiscFlush(dm, dm); ok {
		t.Fatal("folded logs of equal length")
	}
}
