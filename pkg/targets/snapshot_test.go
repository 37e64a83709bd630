package targets

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestSnapshotCheck(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
		err  error
	}{
		{[]string{"o", "c", "p", "0016"}, []string{"o", "c", "P", "16"}, nil},
		{[]string{"o", "c", "Po", "0"}, []string{"o", "c", "PO", "0"}, nil},
		{[]string{"o", "c", "N", "8", "1", "discard_zeroes_cow"}, []string{"o", "c", "N", "8", "1", "discard_zeroes_cow"}, nil},
		{[]string{"o", "c", "P", "8", "1", "Discard_Zeroes_COW"}, []string{"o", "c", "P", "8", "1", "discard_zeroes_cow"}, nil},
		{[]string{"o", "c", "P", "8", "2", "discard_zeroes_cow", "discard_passdown_origin"},
			[]string{"o", "c", "P", "8", "2", "discard_zeroes_cow", "discard_passdown_origin"}, nil},
		{[]string{"o", "c", "P"}, nil, ErrArgCount},
		{[]string{"o", "o", "P", "8"}, nil, ErrSnapSameDev},
		{[]string{"o", "c", "X", "8"}, nil, ErrSnapStoreType},
		{[]string{"o", "c", "NO", "8"}, []string{"o", "c", "N", "8"}, nil}, // dm's transient store ignores its options
		{[]string{"o", "c", "nx", "8"}, []string{"o", "c", "N", "8"}, nil},
		{[]string{"o", "c", "pOx", "8"}, []string{"o", "c", "PO", "8"}, nil}, // dm looks at the first option letter alone
		{[]string{"o", "c", "PX", "8"}, nil, ErrSnapStoreType},
		{[]string{"o", "c", "", "8"}, nil, ErrSnapStoreType},
		{[]string{"o", "c", "N", "0"}, nil, ErrChunk},
		{[]string{"o", "c", "P", "12"}, nil, ErrChunk},
		{[]string{"o", "c", "P", "x"}, nil, ErrNotNumber},
		{[]string{"o", "c", "P", "8", "2", "discard_zeroes_cow"}, nil, ErrArgCount},
		{[]string{"o", "c", "P", "8", "3", "discard_zeroes_cow", "discard_zeroes_cow", "discard_passdown_origin"}, nil, ErrArgCount},
		{[]string{"o", "c", "P", "8", "1", "discard_passdown_origin"}, nil, ErrSnapFeature},
		{[]string{"o", "c", "P", "8", "1", "bogus"}, nil, ErrSnapFeature},
		{[]string{"", "c", "P", "8"}, nil, ErrEmptyPath},
	} {
		got, err := checkSnapshot(c.args, 8)
		if !errors.Is(err, c.err) || !slices.Equal(got, c.want) {
			t.Errorf("checkSnapshot(%q) = %q, %v; want %q, %v", c.args, got, err, c.want, c.err)
		}
	}
	if _, err := checkSnapOrigin([]string{"a", "b"}, 8); !errors.Is(err, ErrArgCount) {
		t.Errorf("snapshot-origin with 2 args: %v", err)
	}
}

// A COW device with room for three chunks: the fourth origin write that
// needs a copy invalidates the snapshot (for good: it loads invalid), and
// the origin write itself goes on.
func TestSnapshotFullCowInvalidates(t *testing.T) {
	const chunk = 4096
	orig, o, s := originAndSnap(t, 16*chunk, 4, 5*chunk, "P", "8")
	originFillsSnapshot(t, o, s, 3, chunk, "40/40 16", "8", orig)
}

// originFillsSnapshot writes a byte into each of the first n chunks of the
// origin o (each copies to s), checks s's status then (before), and writes
// chunk n: that origin write goes on, and s turns Invalid (EIO), for good:
// a table of chunk size chunkArg over its COW loads invalid.
func originFillsSnapshot(t *testing.T, o, s *snapTable, n, chunk int64, before, chunkArg, orig string) {
	t.Helper()
	for c := range n {
		o.mustWrite([]byte{1}, c*chunk, 0)
	}
	if got := s.tg.Status(StatusInfo); got != before {
		t.Fatalf("status %q after %d copies, want %s", got, n, before)
	}
	o.mustWrite([]byte{0xEE}, n*chunk, 0)
	if got := o.mustRead(n*chunk, 1); got[0] != 0xEE {
		t.Error("the origin write that filled the snapshot was lost")
	}
	if got := s.tg.Status(StatusInfo); got != "Invalid" {
		t.Errorf("status %q, want Invalid", got)
	}
	if _, err := s.read(0, 512); !errors.Is(err, ErrSnapInvalid) || !errors.Is(err, syscall.EIO) {
		t.Errorf("read of an invalid snapshot: %v, want ErrSnapInvalid (EIO)", err)
	}
	cow, sectors := s.tg.(*snapshot).cow.Path(), s.tg.(*snapshot).sectors
	s.destroy()
	s = newSnapTable(t, "snapshot", sectors, orig, cow, "P", chunkArg)
	if got := s.tg.Status(StatusInfo); got != "Invalid" {
		t.Errorf("reloaded: status %q, want Invalid", got)
	}
}

// PO: a snapshot write that finds no room overflows the snapshot: every
// write fails from then on (dm kills them all), reads go on; an origin write
// that finds no room still invalidates it.
func TestSnapshotOverflow(t *testing.T) {
	const chunk = 4096
	_, o, s := originAndSnap(t, 16*chunk, 5, 5*chunk, "PO", "8")
	for c := range int64(3) {
		s.mustWrite([]byte{1}, c*chunk, 0)
	}
	err := s.tg.WriteAt(t.Context(), []byte{1}, 3*chunk, 0)
	if !errors.Is(err, ErrSnapOverflow) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("write past the COW's end: %v, want ErrSnapOverflow (EIO)", err)
	}
	if got := s.tg.Status(StatusInfo); got != "Overflow" {
		t.Errorf("status %q, want Overflow", got)
	}
	if err := s.tg.WriteAt(t.Context(), []byte{2}, 0, 0); !errors.Is(err, ErrSnapOverflow) {
		t.Errorf("write to an existing exception of an overflowed snapshot: %v, want ErrSnapOverflow as dm", err)
	}
	if got := s.mustRead(0, 1); got[0] != 1 {
		t.Errorf("an overflowed snapshot reads %d where it has 1", got[0])
	}
	o.mustWrite([]byte{3}, 5*chunk, 0)
	if got := s.tg.Status(StatusInfo); got != "Invalid" {
		t.Errorf("after an origin write with no room: status %q, want Invalid", got)
	}
}

// An overflowed PO snapshot refuses discards as it refuses writes: dm's
// snapshot_map kills every write-direction bio once the snapshot has
// overflowed, before it looks at a discard, so neither the COW's chunks
// are zeroed (discard_zeroes_cow) nor the origin discarded
// (discard_passdown_origin). Write-zeroes fails as a write does.
func TestSnapshotOverflowRefusesDiscards(t *testing.T) {
	const chunk = 4096
	orig := fillPattern(t, 16*chunk, 5)
	s := newSnapTable(t, "snapshot", 16*chunk/512, orig, tempFile(t, 5*chunk), "PO", "8",
		"2", "discard_zeroes_cow", "discard_passdown_origin").resume()
	for c := range int64(3) {
		s.mustWrite([]byte{1}, c*chunk, 0)
	}
	if err := s.tg.WriteAt(t.Context(), []byte{1}, 3*chunk, 0); !errors.Is(err, ErrSnapOverflow) {
		t.Fatalf("write past the COW's end: %v, want ErrSnapOverflow", err)
	}
	before := readFile(t, orig)
	if err := s.tg.Trim(t.Context(), 0, 2*chunk); !errors.Is(err, ErrSnapOverflow) || !errors.Is(err, syscall.EIO) {
		t.Errorf("discard to an overflowed snapshot: %v, want ErrSnapOverflow (EIO) as dm", err)
	}
	if err := s.tg.Zero(t.Context(), 0, chunk, ZeroFlags{}); !errors.Is(err, ErrSnapOverflow) {
		t.Errorf("write-zeroes to an overflowed snapshot: %v, want ErrSnapOverflow", err)
	}
	if got := s.mustRead(0, 2*chunk); got[0] != 1 || got[chunk] != 1 {
		t.Errorf("refused discard changed the snapshot: reads %d, %d where it has 1, 1", got[0], got[chunk])
	}
	if !bytes.Equal(readFile(t, orig), before) {
		t.Error("refused discard was passed down to the origin")
	}
}

// Status as dm prints it: allocated/total metadata, in sectors. A new P
// store has its header and first area allocated; N has no metadata.
func TestSnapshotStatus(t *testing.T) {
	orig := fillPattern(t, 64<<10, 6)
	o := newSnapTable(t, "snapshot-origin", 128, orig)
	p := newSnapTable(t, "snapshot", 128, orig, tempFile(t, 1<<20), "P", "8").resume()
	n := newSnapTable(t, "snapshot", 128, orig, tempFile(t, 1<<20), "N", "8").resume()
	if a, b := p.tg.Status(StatusInfo), n.tg.Status(StatusInfo); a != "16/2048 16" || b != "0/2048 0" {
		t.Errorf("fresh: P %q, N %q; want 16/2048 16, 0/2048 0", a, b)
	}
	o.mustWrite([]byte{1}, 0, 0)
	if a, b := p.tg.Status(StatusInfo), n.tg.Status(StatusInfo); a != "24/2048 16" || b != "8/2048 0" {
		t.Errorf("one exception: P %q, N %q; want 24/2048 16, 8/2048 0", a, b)
	}
	if o.tg.Status(StatusInfo) != "" {
		t.Error("INFO status of origin not empty")
	}
	tp, _ := Lookup("snapshot")
	if !tp.NoLiveSwap {
		t.Error("snapshot allows resume --live")
	}
}

// The TABLE status is the line as dm's snapshot_status prints it for
// `dmsetup table`: the chunk size in use, not the one written (a P store
// given 0 takes 32 sectors when new, else its header's, which also
// overrides a table's other size), and the features set, counted and in
// dm's order, not the words given. snapshot-merge prints the same.
func TestSnapshotTableStatus(t *testing.T) {
	orig := fillPattern(t, 64<<10, 6)
	cow, cow2 := tempFile(t, 1<<20), tempFile(t, 1<<20)
	for _, c := range []struct {
		typ  string
		args []string
		want string
	}{
		{"snapshot", []string{orig, cow, "P", "0"}, orig + " " + cow + " P 32"},
		{"snapshot", []string{orig, cow, "p", "8"}, orig + " " + cow + " P 32"},
		{"snapshot", []string{orig, cow, "PO", "0"}, orig + " " + cow + " PO 32"},
		{"snapshot-merge", []string{orig, cow, "P", "0"}, orig + " " + cow + " P 32"},
		{"snapshot", []string{orig, cow2, "N", "016"}, orig + " " + cow2 + " N 16"},
		{"snapshot", []string{orig, cow2, "N", "8", "2", "discard_passdown_origin", "discard_zeroes_cow"},
			orig + " " + cow2 + " N 8 2 discard_zeroes_cow discard_passdown_origin"},
		{"snapshot", []string{orig, cow2, "N", "8", "2", "discard_zeroes_cow", "discard_zeroes_cow"},
			orig + " " + cow2 + " N 8 1 discard_zeroes_cow"},
	} {
		s := newSnapTable(t, c.typ, 128, c.args...)
		if got := s.tg.Status(StatusTable); got != c.want {
			t.Errorf("%s %q: TABLE status %q, want %q", c.typ, c.args, got, c.want)
		}
		s.destroy()
	}
}

// Exceptions are durable before the write they cover returns: an origin
// write that needed a copy finds the pair on the COW device and the COW
// synced (the data, then the area); a FUA write to an existing exception
// syncs the COW; a plain one does not.
func TestSnapshotCommitsBeforeAck(t *testing.T) {
	const chunk = 4096
	orig := fillPattern(t, 16*chunk, 13)
	cow := tempFile(t, 1<<20)
	o := newSnapTable(t, "snapshot-origin", 128, orig)
	s := newSnapTable(t, "snapshot", 128, orig, cow, "P", "8").resume()
	cowDev := s.tg.(*snapshot).cow
	n := cowDev.Syncs()
	o.mustWrite([]byte{1}, 5*chunk, 0)
	if got := cowDev.Syncs() - n; got != 2 {
		t.Errorf("origin write with a copy: %d COW syncs, want 2 (data, then metadata)", got)
	}
	area := readFile(t, cow)[chunk : 2*chunk]
	if old, nw := getPair(area, 0); old != 5 || nw != 2 {
		t.Errorf("first pair on disk {%d, %d}, want {5, 2}", old, nw)
	}
	n = cowDev.Syncs()
	s.mustWrite([]byte{2}, 5*chunk, 0)
	if cowDev.Syncs() != n {
		t.Error("a plain write to an existing exception synced")
	}
	s.mustWrite([]byte{3}, 5*chunk, FUA)
	if cowDev.Syncs() != n+1 {
		t.Error("a FUA write to an existing exception did not sync the COW")
	}
}

// A snapshot turning invalid raises its table's event, once, as dm's
// __invalidate_snapshot does (dmeventd learns of it so); an origin's table
// raises none for it.
func TestSnapshotInvalidRaisesEvent(t *testing.T) {
	const chunk = 4096
	_, o, s := originAndSnap(t, 16*chunk, 4, 5*chunk, "N", "8")
	var snapEvents, originEvents atomic.Int32
	s.devs.SetEventFunc(func() { snapEvents.Add(1) })
	o.devs.SetEventFunc(func() { originEvents.Add(1) })
	for c := range int64(6) { // the fifth copy finds no room
		o.mustWrite([]byte{1}, c*chunk, 0)
	}
	if got := s.tg.Status(StatusInfo); got != "Invalid" {
		t.Fatalf("status %q, want Invalid", got)
	}
	if n, m := snapEvents.Load(), originEvents.Load(); n != 1 || m != 0 {
		t.Fatalf("events: snapshot's table %d, origin's %d; want 1 and 0", n, m)
	}
}

// A snapshot that turns invalid while a write to it copies (another
// writer found the COW full) takes none of that write's new exceptions,
// and the write fails with EIO, as dm's pending_complete fails the bios
// of an exception whose snapshot is no longer valid.
func TestSnapshotWriteRacingInvalidationFails(t *testing.T) {
	const chunk = 4096
	_, _, s := originAndSnap(t, 16*chunk, 4, 8*chunk, "N", "8")
	snap := s.tg.(*snapshot)
	snap.beforeCommit = func() { snap.store.Load().invalidate() }
	err := s.tg.WriteAt(context.Background(), make([]byte, chunk), 2*chunk, 0)
	if !errors.Is(err, ErrSnapInvalid) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("a write whose snapshot went invalid before its commit: %v, want ErrSnapInvalid (EIO)", err)
	}
	if _, ok := snap.store.Load().lookup(2); ok {
		t.Fatal("the write's exception was committed to an invalid snapshot")
	}
}
