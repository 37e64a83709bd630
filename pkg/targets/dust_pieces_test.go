package targets

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
)

// dm-dust sets its max_io_len to the block size, so dm splits I/O into
// pieces at multiples of the block size counted from the target's start,
// and dust_map judges each piece by the device block of its first sector
// (the offset included). With an offset that is not a multiple of the
// block size, a piece straddles two device blocks and only the first one
// counts. Here: 4096-byte blocks (8 sectors), offset 4 sectors, bad device
// block 1 (device sectors 8-15, target sectors 4-11).
func TestDustUnalignedOffsetJudgesEachPieceByItsFirstSector(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 1<<20, 1024, "4", "4096")
	msg(t, d, "addbadblock", "1")
	msg(t, d, "enable")
	buf := make([]byte, 4096)
	// Target sectors 0-7: one piece, device sectors 4-11, judged by block 0.
	if err := d.ReadAt(ctx, buf, 0); err != nil {
		t.Fatalf("read of target block 0 (device block 0 judges it): %v, want success as dm", err)
	}
	// Target sectors 8-15: device sectors 12-19, judged by block 1.
	if err := d.ReadAt(ctx, buf, 4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of target block 1 (device block 1 judges it): %v, want EIO", err)
	}
	// Target sectors 4-7: a piece starting at device sector 8, block 1.
	if err := d.ReadAt(ctx, buf[:2048], 2048); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of target sectors 4-7 (device sector 8 first): %v, want EIO", err)
	}
	// Target sectors 16-31: blocks 2 and 3 judge them.
	if err := d.ReadAt(ctx, make([]byte, 8192), 8192); err != nil {
		t.Fatalf("read of target blocks 2-3: %v", err)
	}
}

// A write is judged piece by piece too: a piece whose judging block has
// writes still to fail is not written, the others are; and a device block
// that judges two pieces of one write (a write of target sectors 4-11:
// pieces at device sectors 8 and 12, both in block 1) counts two writes.
func TestDustUnalignedOffsetWritesByPiece(t *testing.T) {
	ctx := context.Background()
	d, path := newTestDust(t, 1<<20, 1024, "4", "4096")
	msg(t, d, "addbadblock", "1", "2")
	msg(t, d, "enable")
	data := bytes.Repeat([]byte{0x5a}, 4096)
	// Target sectors 0-7 (device 4-11), judged by block 0: written, and
	// block 1 stays listed with its count.
	if err := d.WriteAt(ctx, data, 0, 0); err != nil {
		t.Fatalf("write of target block 0: %v, want success as dm", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "1\n" {
		t.Fatalf("list after writing target block 0: %q, want block 1 still there", got)
	}
	// Target sectors 4-11: pieces 4-7 and 8-11, both judged by block 1
	// (device sectors 8 and 12): both fail, using up its two writes.
	if err := d.WriteAt(ctx, data, 2048, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write of target sectors 4-11: %v, want EIO", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "1\n" {
		t.Fatalf("list after two failed pieces: %q, want block 1", got)
	}
	// Next write judged by block 1 removes it and is written.
	other := bytes.Repeat([]byte{0xc3}, 2048)
	if err := d.WriteAt(ctx, other, 2048, 0); err != nil {
		t.Fatalf("third write judged by block 1: %v, want success", err)
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 0 badblock(s) found" {
		t.Fatalf("after the remapping write: %q", got)
	}
	back := make([]byte, 4096)
	if err := d.ReadAt(ctx, back, 0); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0x5a}, 2048), other...)
	if !bytes.Equal(back, want) {
		t.Fatalf("target block 0 reads back wrong (file %s)", path)
	}
}

// written against the plainest model of dm: walk the write's pieces one
// by one, applying the rule to each judging block. Random offsets, block
// sizes, lists and writes; the written ranges, the error and the list
// must agree.
func TestDustWrittenMatchesPieceModel(t *testing.T) {
	rng := uint64(7)
	next := func(n uint64) uint64 {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return rng % n
	}
	for round := 0; round < 300; round++ {
		shift := uint(9 + next(3))
		d := &dust{offset: int64(next(40)) * 512, blkShift: shift}
		d.enabled.Store(true)
		model := map[uint64]uint8{}
		for i := next(6); i > 0; i-- {
			b, w := next(40), uint8(next(3))
			if d.bad.add(b, w) {
				model[b] = w
			}
		}
		for w := 0; w < 4; w++ {
			off, n := int64(next(128))*512, int64(1+next(64))*512
			var got, want [][2]int64
			err := d.written(off, n, func(o, m int64) error { got = append(got, [2]int64{o, m}); return nil })
			fails := false
			for p := off; p < off+n; {
				nx, block := d.nextPiece(p, off+n)
				if c, ok := model[block]; ok && c > 0 {
					model[block], fails = c-1, true
				} else {
					if ok {
						delete(model, block)
					}
					if k := len(want) - 1; k >= 0 && want[k][0]+want[k][1] == p {
						want[k][1] += nx - p
					} else {
						want = append(want, [2]int64{p, nx - p})
					}
				}
				p = nx
			}
			if fails != (err != nil) || len(got) != len(want) {
				t.Fatalf("round %d: write %d@%d: err %v, wrote %v; model fails %v, writes %v", round, n, off, err, got, fails, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("round %d: write %d@%d: wrote %v, model %v", round, n, off, got, want)
				}
			}
			if len(d.bad.blocks) != len(model) {
				t.Fatalf("round %d: list %v, model %v", round, d.bad.blocks, model)
			}
			for _, e := range d.bad.blocks {
				if c, ok := model[e.n]; !ok || c != e.wrFail {
					t.Fatalf("round %d: list %v, model %v", round, d.bad.blocks, model)
				}
			}
		}
	}
}

// dm sends a client's flush to dust as an empty bio at sector 0 of the
// mapped device, which dust_map remaps (offset + 0 - begin) and judges as
// a write once enabled: a target at the table's start judges every FLUSH
// by the first block of its data area, one further in by the block begin
// sectors before its offset.
func TestDustFlushJudgedByTheBlockOfSectorZero(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 1<<20, 1024, "16", "4096") // data area from device block 2
	msg(t, d, "addbadblock", "2", "1")
	if err := d.FlushRequest(ctx); err != nil {
		t.Fatalf("flush in bypass mode: %v", err)
	}
	msg(t, d, "enable")
	if err := d.FlushRequest(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("flush with block 2 failing one write: %v, want EIO", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "2\n" {
		t.Fatalf("list after a failed flush: %q, want 2", got)
	}
	if err := d.FlushRequest(ctx); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 0 badblock(s) found" {
		t.Fatalf("after a flush judged by block 2: %q, want it remapped", got)
	}

	// At sector 8 of the table: sector 0 maps to device sector 8, block 1.
	d.Place(8)
	msg(t, d, "addbadblock", "1", "1")
	msg(t, d, "addbadblock", "2", "1")
	if err := d.FlushRequest(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("flush of a target at sector 8, block 1 failing: %v, want EIO", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "1\n2\n" {
		t.Fatalf("list: %q", got)
	}
	// Beyond its offset, sector 0 - begin wraps: no listed block judges it.
	d.Place(24)
	if err := d.FlushRequest(ctx); err != nil {
		t.Fatalf("flush of a target at sector 24 (past its offset): %v", err)
	}
	if n := d.Faults().Requests[FaultWriteError].Load(); n != 2 {
		t.Fatalf("write_error faults %d, want 2", n)
	}
}
