package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/logwrites"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// newTestLogWrites builds a log-writes target over fresh files: a device
// of devBytes (the target covers it all) and a log of logBytes.
func newTestLogWrites(t *testing.T, devBytes, logBytes int64) (lw *logWrites, dev, log string) {
	t.Helper()
	dev, log = tempFile(t, devBytes), tempFile(t, logBytes)
	args, err := checkLogWrites([]string{dev, log}, uint64(devBytes/SectorSize))
	if err != nil {
		t.Fatal(err)
	}
	s := NewDevSet(false)
	t.Cleanup(func() { s.Close() })
	tg, err := newLogWrites(args, uint64(devBytes/SectorSize), s)
	if err != nil {
		t.Fatal(err)
	}
	lw = tg.(*logWrites)
	lw.Resume(context.Background()) // live, as a table's targets are once resumed
	return lw, dev, log
}

// newRemoteLogWrites builds a resumed log-writes target of 128 sectors
// whose <dev> is export, served over NBD, and whose log is a fresh file
// of logBytes.
func newRemoteLogWrites(t *testing.T, export *nbdtest.Mem, logBytes int64) (lw *logWrites, log string) {
	t.Helper()
	srv := nbdtest.Start(t, nbdtest.Exports{"d": export})
	log = tempFile(t, logBytes)
	s := NewDevSet(false)
	t.Cleanup(func() { s.Close() })
	tg, err := newLogWrites([]string{srv.URI("d"), log}, 128, s)
	if err != nil {
		t.Fatal(err)
	}
	lw = tg.(*logWrites)
	lw.Resume(context.Background())
	return lw, log
}

// logged is one entry as a test compares it: "sector+count FLAGS" and the
// first byte of each data sector, or the mark's name.
func logged(e logwrites.Entry, mark string, data []byte) string {
	s := fmt.Sprintf("%d+%d %s", e.Sector, e.NrSectors, logwrites.FlagString(e.Flags))
	if mark != "" {
		return s + " " + mark
	}
	for i := uint64(0); len(data) > 0 && i < e.NrSectors; i++ {
		s += " " + string(data[i*uint64(len(data))/e.NrSectors])
	}
	return s
}

// fileLogSector is the log sector of a log-writes over a file: a file's
// logical block size.
const fileLogSector = 512

// entries decodes the first n entries of the log file, whatever its super
// block says (dm rewrites the count only at FUA writes and marks).
func entries(t *testing.T, path string, n int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sector := fileLogSector
	if s, err := logwrites.DecodeSuper(b); err == nil {
		sector = int(s.SectorSize)
	}
	var out []string
	pos := sector
	for range n {
		e, mark, err := logwrites.DecodeEntry(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if e.HasData() {
			data = b[pos+sector : pos+sector+int(e.NrSectors)*sector]
		}
		out = append(out, logged(e, mark, data))
		pos += int(e.LogSectors()) * sector
	}
	return out
}

// superCount is the log's super block's entry count; -1 without one.
func superCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := logwrites.DecodeSuper(b)
	if errors.Is(err, logwrites.ErrMagic) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return int(s.NrEntries)
}

func sectorOf(c byte, sectors int) []byte { return bytes.Repeat([]byte{c}, sectors*fileLogSector) }

func expect(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestLogWritesCheck(t *testing.T) {
	if _, err := checkLogWrites([]string{"d"}, 8); !errors.Is(err, ErrArgCount) || !strings.Contains(err.Error(), "Invalid argument count") {
		t.Errorf("one arg: %v", err)
	}
	if _, err := checkLogWrites([]string{"d", ""}, 8); !errors.Is(err, ErrEmptyPath) {
		t.Errorf("empty log path: %v", err)
	}
	got, err := checkLogWrites([]string{"d", "l", "extra"}, 8) // dm ignores the rest
	if err != nil || strings.Join(got, " ") != "d l" {
		t.Errorf("canonical: %q %v", got, err)
	}
	tp, err := Lookup("log-writes")
	if err != nil || !tp.NoLiveSwap {
		t.Errorf("log-writes must refuse resume --live: %+v %v", tp, err)
	}
}

// dm's order: a plain write is logged only when a later FLUSH completes,
// just before that flush's entry; a FUA write at once, ahead of plain
// writes completed before it; the super block is rewritten at FUA writes
// and marks only.
func TestLogWritesOrder(t *testing.T) {
	ctx := context.Background()
	lw, _, log := newTestLogWrites(t, 64*1024, 1<<20)
	lw.WriteAt(ctx, sectorOf('a', 1), 0, 0)
	lw.WriteAt(ctx, sectorOf('b', 2), 4096, 0)
	if got := lw.Status(StatusInfo); got != "0 0" || superCount(t, log) != -1 {
		t.Fatalf("plain writes before a flush: status %q, super %d; want nothing logged", got, superCount(t, log))
	}
	lw.WriteAt(ctx, sectorOf('c', 1), 512, FUA)
	expect(t, "after the FUA write", entries(t, log, 1), []string{"1+1 FUA c"})
	if superCount(t, log) != 1 {
		t.Fatalf("super counts %d after a FUA write, want 1", superCount(t, log))
	}
	if err := lw.FlushRequest(ctx); err != nil {
		t.Fatal(err)
	}
	lw.WriteAt(ctx, sectorOf('d', 1), 0, 0) // after the flush: waits for the next
	want := []string{"1+1 FUA c", "0+1 NONE a", "8+2 NONE b b", "0+0 FLUSH"}
	expect(t, "after the flush", entries(t, log, 4), want)
	// 4 entries, last sector in use: super + 4 entry sectors + 4 data sectors.
	if got := lw.Status(StatusInfo); got != "4 8" {
		t.Fatalf("status %q, want dm's \"4 8\"", got)
	}
	if superCount(t, log) != 1 {
		t.Fatalf("a flush rewrote the super block (%d); dm rewrites it at FUA and mark only", superCount(t, log))
	}
	if _, err := lw.Message(ctx, []string{"mark", "m1"}); err != nil {
		t.Fatal(err)
	}
	expect(t, "after the mark", entries(t, log, 5), append(want, "0+0 MARK m1"))
	if superCount(t, log) != 5 {
		t.Fatalf("super counts %d after the mark, want 5", superCount(t, log))
	}
	if err := lw.Destroy(); err != nil {
		t.Fatal(err)
	}
	expect(t, "after destroy", entries(t, log, 7), append(want, "0+0 MARK m1", "0+1 NONE d", "0+0 MARK dm-log-writes-end"))
	if superCount(t, log) != 7 {
		t.Fatalf("super counts %d after destroy, want 7", superCount(t, log))
	}
}

// A discard is logged like a plain write, without data; a zeroed range as
// a write of zeros; parts of sectors as the sectors read back.
func TestLogWritesDiscardZeroUnaligned(t *testing.T) {
	ctx := context.Background()
	lw, dev, log := newTestLogWrites(t, 64*1024, 1<<20)
	lw.WriteAt(ctx, sectorOf('x', 8), 0, 0)
	if err := lw.Trim(ctx, 1024, 1024); err != nil {
		t.Fatal(err)
	}
	if err := lw.Zero(ctx, 0, 512, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	if err := lw.Zero(ctx, 0, 512, ZeroFlags{Fast: true}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("fast zero: %v, want ErrNotSupported", err)
	}
	lw.WriteAt(ctx, []byte("yy"), 3*512+10, 0)
	if err := lw.Trim(ctx, 5*512+100, 2*512); err != nil { // sector 6 whole, 5 and 7 in part
		t.Fatal(err)
	}
	lw.FlushRequest(ctx)
	got := entries(t, log, 8)
	want := []string{"0+8 NONE x x x x x x x x", "2+2 DISCARD", "0+1 NONE \x00", "3+1 NONE \x00",
		"5+1 NONE x", "6+1 DISCARD", "7+1 NONE \x00", "0+0 FLUSH"}
	expect(t, "entries", got, want)
	b, _ := os.ReadFile(dev)
	if string(b[3*512+10:3*512+12]) != "yy" || b[5*512+99] != 'x' || b[5*512+100] != 0 || b[7*512+99] != 0 || b[7*512+100] != 'x' {
		t.Fatal("the device does not hold what was written")
	}
	lb, _ := os.ReadFile(log)
	if !bytes.Contains(lb, []byte("yy")) {
		t.Fatal("the unaligned write's sector in the log lacks its bytes")
	}
}

func TestLogWritesMarkMessages(t *testing.T) {
	ctx := context.Background()
	lw, _, log := newTestLogWrites(t, 64*1024, 1<<20)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mark"}, "expect 2 arguments, got 1"},
		{[]string{"mark", "a", "b"}, "expect 2 arguments, got 3"},
		{[]string{"note", "a"}, "Unrecognised log writes target message received: note"},
	} {
		if _, err := lw.Message(ctx, c.args); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want EINVAL saying %q", c.args, err, c.want)
		}
	}
	long := strings.Repeat("n", 600)
	for _, m := range [][]string{{"MARK", "upper"}, {"mark", long}} {
		if r, err := lw.Message(ctx, m); err != nil || r != "" {
			t.Fatalf("%q: %q %v", m[0], r, err)
		}
	}
	expect(t, "marks", entries(t, log, 2), []string{"0+0 MARK upper", "0+0 MARK " + long[:479]})
}

// The log full: the entry that reaches the log's end is not logged, even
// one that would just fit (dm refuses it when it ends at the last
// sector); logging stops for good and the status says so, with the space
// the refused entry took counted, as dm's does; I/O goes on, and the
// writes that waited for a flush are dropped, not held.
func TestLogWritesLogFull(t *testing.T) {
	ctx := context.Background()
	lw, dev, log := newTestLogWrites(t, 64*1024, 5*512)
	lw.WriteAt(ctx, sectorOf('w', 1), 1536, 0)  // waits for a flush that finds the log full
	lw.WriteAt(ctx, sectorOf('a', 1), 0, FUA)   // log sectors 1-2 of 0-4
	lw.WriteAt(ctx, sectorOf('b', 1), 512, FUA) // would be 3-4: just fits, refused
	if got := lw.Status(StatusInfo); got != "1 4 logging_disabled" {
		t.Fatalf("status %q, want \"1 4 logging_disabled\"", got)
	}
	lw.WriteAt(ctx, sectorOf('c', 1), 1024, 0)
	lw.FlushRequest(ctx)
	if n := len(lw.log.takeUnflushed()); n != 0 {
		t.Fatalf("%d writes still held in memory for a log that stopped", n)
	}
	lw.Message(ctx, []string{"mark", "late"})
	if got := lw.Status(StatusInfo); got != "1 4 logging_disabled" || superCount(t, log) != 1 {
		t.Fatalf("after more I/O: status %q, super %d", got, superCount(t, log))
	}
	if st, _ := os.Stat(log); st.Size() != 5*512 {
		t.Fatalf("the log grew to %d bytes", st.Size())
	}
	b, _ := os.ReadFile(dev)
	if b[0] != 'a' || b[512] != 'b' || b[1024] != 'c' {
		t.Fatal("I/O stopped with the log")
	}
}

// An empty log file has no end, as dm treats a log device of unknown size.
func TestLogWritesEmptyLogGrows(t *testing.T) {
	ctx := context.Background()
	lw, _, log := newTestLogWrites(t, 64*1024, 0)
	lw.WriteAt(ctx, sectorOf('a', 16), 0, FUA)
	if got := lw.Status(StatusInfo); got != "1 17" {
		t.Fatalf("status %q", got)
	}
	if st, _ := os.Stat(log); st.Size() != 18*512 {
		t.Fatalf("log is %d bytes, want 18 sectors", st.Size())
	}
}

// A table loaded but never resumed writes nothing at destroy (dm's would
// write its end mark over the live table's log).
func TestLogWritesUnresumedDestroyWritesNothing(t *testing.T) {
	dev, log := tempFile(t, 64*1024), tempFile(t, 1<<20)
	s := NewDevSet(false)
	defer s.Close()
	tg, err := newLogWrites([]string{dev, log}, 128, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.(Destroyer).Destroy(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("an inactive table's destroy wrote to the log")
	}
}

// dm's target does not take its table start off a bio's sector: a target
// placed at sector 32 reads and writes <dev> from its sector 32 and logs
// those sectors; what would reach past <dev>'s end fails with EIO and
// writes nothing (the file does not grow).
func TestLogWritesPlacedUsesMappedSectors(t *testing.T) {
	ctx := context.Background()
	lw, dev, log := newTestLogWrites(t, 64*1024, 1<<20)
	lw.Place(32)
	if err := lw.WriteAt(ctx, sectorOf('a', 2), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := lw.Trim(ctx, 4*512, 512); err != nil {
		t.Fatal(err)
	}
	if err := lw.Zero(ctx, 6*512, 512, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	if err := lw.FlushRequest(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "entries", entries(t, log, 4), []string{"32+2 NONE a a", "36+1 DISCARD", "38+1 NONE \x00", "0+0 FLUSH"})
	b, _ := os.ReadFile(dev)
	if b[32*512] != 'a' || b[0] != 0 {
		t.Fatal("the write did not land at <dev>'s sector 32")
	}
	p := make([]byte, 512)
	if err := lw.ReadAt(ctx, p, 0); err != nil || p[0] != 'a' {
		t.Fatalf("read of the target's sector 0: %v, %q; want <dev>'s sector 32", err, p[0])
	}
	end := int64(64*1024 - 32*512) // the target's byte at <dev>'s end
	if err := lw.ReadAt(ctx, p, end-256); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read past <dev>'s end: %v, want EIO", err)
	}
	if err := lw.WriteAt(ctx, sectorOf('z', 1), end, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write past <dev>'s end: %v, want EIO", err)
	}
	if err := lw.Trim(ctx, end, 512); !errors.Is(err, syscall.EIO) {
		t.Fatalf("discard past <dev>'s end: %v, want EIO", err)
	}
	if fi, _ := os.Stat(dev); fi.Size() != 64*1024 {
		t.Fatalf("<dev> grew to %d bytes", fi.Size())
	}
}

// Over a device of 4 KiB logical blocks the log's sector is 4096, as
// dm's is its device's logical block size: the super block says so, each
// entry's header takes 4096 bytes and its sector and length count 4 KiB
// blocks, a mark is cut to fit 4096 bytes, and the status still counts
// the 512-byte sectors in use.
func TestLogWritesSectorIsTheDevicesBlock(t *testing.T) {
	ctx := context.Background()
	export := nbdtest.NewMem(64 * 1024)
	export.SetMinBlock(4096)
	lw, log := newRemoteLogWrites(t, export, 1<<20)
	block := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n*4096) }
	if err := lw.WriteAt(ctx, block('b', 2), 4096, 0); err != nil {
		t.Fatal(err)
	}
	if err := lw.WriteAt(ctx, block('a', 1), 0, FUA); err != nil {
		t.Fatal(err)
	}
	if err := lw.FlushRequest(ctx); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 5000)
	if _, err := lw.Message(ctx, []string{"mark", long}); err != nil {
		t.Fatal(err)
	}
	expect(t, "entries", entries(t, log, 4), []string{"0+1 FUA a", "1+2 NONE b b", "0+0 FLUSH", "0+0 MARK " + long[:4096-32-1]})
	b, _ := os.ReadFile(log)
	if super, err := logwrites.DecodeSuper(b); err != nil || super.SectorSize != 4096 || super.NrEntries != 4 {
		t.Fatalf("super block %+v, %v; want 4 entries of 4096-byte sectors", super, err)
	}
	// super 8 + FUA 8+8 + write 8+16 + flush 8 + mark 8 = 64 sectors: the
	// last in use is 63.
	if got := lw.Status(StatusInfo); got != "4 63" {
		t.Fatalf("status %q, want dm's \"4 63\"", got)
	}
}

// A client that never flushes makes log-writes hold no more than the log
// can take: writes past what fits are not kept (the first is, without its
// data, for the flush to count its space as dm does). The flush then logs
// and reports what dm's would: the writes that fit, then logging stops.
func TestLogWritesHoldsOnlyWhatFits(t *testing.T) {
	ctx := context.Background()
	lw, dev, log := newTestLogWrites(t, 64*1024, 8*512) // room for 3 one-sector writes
	for i := range 100 {
		lw.WriteAt(ctx, sectorOf(byte('a'+i%26), 1), int64(i%64)*512, 0)
	}
	lw.log.mu.Lock()
	held, bytes := len(lw.log.unflushed), lw.log.heldBytes
	lw.log.mu.Unlock()
	if held != 4 || bytes != 3*2*512 {
		t.Fatalf("100 writes, a log with room for 3: %d held, %d bytes (want 3 and the one that stops the log, 3 KiB)", held, bytes)
	}
	lw.FlushRequest(ctx)
	if got := lw.Status(StatusInfo); got != "3 8 logging_disabled" {
		t.Fatalf("status %q, want dm's \"3 8 logging_disabled\"", got)
	}
	expect(t, "log", entries(t, log, 3), []string{"0+1 NONE a", "1+1 NONE b", "2+1 NONE c"})
	if b, _ := os.ReadFile(dev); b[99%64*512] != 'a'+99%26 {
		t.Fatal("a write not logged was not done either")
	}
}

// A log without an end (an empty file) holds at most maxHeldBytes for
// the next flush; past that, logging stops, as dm's does when it cannot
// allocate for a write, and what was held is dropped. The I/O goes on.
func TestLogWritesHeldBound(t *testing.T) {
	defer func(old int64) { maxHeldBytes = old }(maxHeldBytes)
	maxHeldBytes = 64 << 10
	ctx := context.Background()
	lw, dev, _ := newTestLogWrites(t, 256*1024, 0)
	for i := range 100 {
		if err := lw.WriteAt(ctx, sectorOf('x', 2), int64(i)*1024, 0); err != nil {
			t.Fatal(err)
		}
	}
	lw.log.mu.Lock()
	held, bytes := len(lw.log.unflushed), lw.log.heldBytes
	lw.log.mu.Unlock()
	if got := lw.Status(StatusInfo); got != "0 0 logging_disabled" || held != 0 || bytes != 0 {
		t.Fatalf("100 KiB written, no flush, a 64 KiB bound: status %q, %d held (%d bytes)", got, held, bytes)
	}
	if b, _ := os.ReadFile(dev); b[99*1024] != 'x' {
		t.Fatal("the I/O stopped with the log")
	}
}

// A flush whose device sync fails logs nothing: what it covered is held
// again, before what completed since, and the next flush logs them all in
// that order, as far as the log has room (here for three of four).
func TestLogWritesFailedFlushHoldsAgain(t *testing.T) {
	ctx := context.Background()
	export := nbdtest.NewMem(64 * 1024)
	lw, log := newRemoteLogWrites(t, export, 9*512) // super, three one-sector writes, and 2 sectors short of the fourth and a flush
	lw.WriteAt(ctx, sectorOf('a', 1), 0, 0)
	lw.WriteAt(ctx, sectorOf('b', 1), 512, 0)
	export.FailFlush(syscall.EIO)
	if err := lw.FlushRequest(ctx); err == nil {
		t.Fatal("a flush whose sync failed succeeded")
	}
	lw.WriteAt(ctx, sectorOf('c', 1), 1024, 0)
	lw.WriteAt(ctx, sectorOf('d', 1), 1536, 0) // no room left for it
	lw.log.mu.Lock()
	held, bytes := len(lw.log.unflushed), lw.log.heldBytes
	lw.log.mu.Unlock()
	if held != 4 || bytes != 3*2*512 {
		t.Fatalf("held after the failed flush: %d entries, %d bytes (want a, b, c and d without its data)", held, bytes)
	}
	export.FailFlush(0)
	if err := lw.FlushRequest(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "log", entries(t, log, 3), []string{"0+1 NONE a", "1+1 NONE b", "2+1 NONE c"})
	if got := lw.Status(StatusInfo); got != "3 8 logging_disabled" {
		t.Fatalf("status %q, want dm's \"3 8 logging_disabled\"", got)
	}
}
