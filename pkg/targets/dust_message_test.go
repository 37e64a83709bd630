package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// The documentation's message examples, replies as dmsetup prints them
// (newer kernels hand them back instead of logging them), errors as the
// EINVAL dmsetup reports with the kernel's log line as text.
func TestDustMessagesDocExamples(t *testing.T) {
	d, _ := newTestDust(t, 1<<20, 2048, "0", "512")
	for _, b := range []string{"60", "67", "72"} {
		if r := msg(t, d, "addbadblock", b); r != "" {
			t.Fatalf("addbadblock %s replied %q, want nothing", b, r)
		}
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"queryblock", "72"}, "dust_query_block: block 72 found in badblocklist"},
		{[]string{"queryblock", "73"}, "dust_query_block: block 73 not found in badblocklist"},
		{[]string{"countbadblocks"}, "countbadblocks: 3 badblock(s) found"},
		{[]string{"listbadblocks"}, "60\n67\n72\n"},
		{[]string{"removebadblock", "67"}, ""},
		{[]string{"QueryBlock", "67"}, "dust_query_block: block 67 not found in badblocklist"},
		{[]string{"clearbadblocks"}, "dust_clear_badblocks: badblocks cleared"},
		{[]string{"clearbadblocks"}, "dust_clear_badblocks: no badblocks found"},
		{[]string{"listbadblocks"}, "No blocks in badblocklist"},
		{[]string{"countbadblocks"}, "countbadblocks: 0 badblock(s) found"},
	} {
		if got := msg(t, d, c.words...); got != c.want {
			t.Fatalf("%q replied %q, want %q", c.words, got, c.want)
		}
	}
	msg(t, d, "addbadblock", "88")
	msgFails(t, d, "dust: dust_add_block: block 88 already in badblocklist", "addbadblock", "88")
	msgFails(t, d, "dust: dust_remove_block: block 87 not found in badblocklist", "removebadblock", "87")
}

// What dm refuses, and its words for it.
func TestDustMessageErrors(t *testing.T) {
	d, _ := newTestDust(t, 1<<20, 2048, "0", "4096") // 256 blocks of 4 KiB
	msgFails(t, d, "unrecognized message 'frobnicate' received", "frobnicate")
	msgFails(t, d, "unrecognized message 'frob' received", "frob", "1")
	msgFails(t, d, "unrecognized message 'removebadblock' received", "removebadblock", "1", "2")
	msgFails(t, d, "addbadblock requires an additional argument", "addbadblock")
	msgFails(t, d, "invalid number of arguments '4'", "addbadblock", "1", "2", "3")
	msgFails(t, d, "invalid block number 'x'", "queryblock", "x")
	msgFails(t, d, "selected block value out of range", "addbadblock", "257")
	msgFails(t, d, "selected write fail count out of range", "addbadblock", "1", "256")
	// dm compares with '>': the block just past the device is taken.
	msg(t, d, "addbadblock", "256")
	msg(t, d, "ADDBADBLOCK", "255", "255")
	if got := msg(t, d, "listbadblocks"); got != "255\n256\n" {
		t.Fatalf("list %q", got)
	}
}

// A block added with a write fail count fails that many writes (the rest
// of the request is written), then the next write removes it.
func TestDustWriteFailCount(t *testing.T) {
	ctx := context.Background()
	d, p := newTestDust(t, 1<<20, 2048, "0", "512")
	msg(t, d, "addbadblock", "3", "2")
	msg(t, d, "enable")
	for i := byte(1); i <= 2; i++ {
		data := bytes.Repeat([]byte{i}, 3*512) // blocks 2, 3, 4
		if err := d.WriteAt(ctx, data, 2*512, 0); !errors.Is(err, syscall.EIO) {
			t.Fatalf("write %d over block 3: %v, want EIO", i, err)
		}
		raw, _ := os.ReadFile(p)
		want := append(append(bytes.Repeat([]byte{i}, 512), make([]byte, 512)...), bytes.Repeat([]byte{i}, 512)...)
		if !bytes.Equal(raw[2*512:5*512], want) {
			t.Fatalf("write %d: block 3 starts %v, want it unwritten (zeros) and blocks 2, 4 written", i, raw[3*512:3*512+8])
		}
	}
	if got := msg(t, d, "queryblock", "3"); got != "dust_query_block: block 3 found in badblocklist" {
		t.Fatalf("after two failed writes: %q", got)
	}
	if err := d.WriteAt(ctx, make([]byte, 512), 3*512, 0); err != nil {
		t.Fatalf("third write: %v", err)
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 0 badblock(s) found" {
		t.Fatalf("after the third write: %q", got)
	}
	if n := d.Faults().Requests[FaultWriteError].Load(); n != 2 {
		t.Fatalf("write_error faults %d, want 2", n)
	}
}

// Blocks are the backing device's, offset included: with an offset of
// one 4 KiB block, the target's first block is the device's block 1, and
// the device's size (not the target's) bounds block numbers.
func TestDustBlocksCountFromTheDevice(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 64<<10, 16, "8", "4096") // 16 device blocks, the target is 2
	msg(t, d, "addbadblock", "1")
	msg(t, d, "addbadblock", "16")
	msg(t, d, "enable")
	buf := make([]byte, 4096)
	if err := d.ReadAt(ctx, buf[:512], 3584); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of the target's first block (device block 1): %v, want EIO", err)
	}
	if err := d.ReadAt(ctx, buf, 4096); err != nil {
		t.Fatalf("read of the target's second block: %v", err)
	}
	msgFails(t, d, "selected block value out of range", "queryblock", "17")
}

// Messages and I/O at once: the list's lock keeps them apart (run with
// -race); each writer's remap is seen by its own later read.
func TestDustConcurrentMessagesAndIO(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 1<<20, 2048, "0", "512")
	msg(t, d, "enable")
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			buf := make([]byte, 512)
			for i := range 200 {
				b := int64(g*256 + i%256)
				if _, err := d.Message(ctx, []string{"addbadblock", itoa(b)}); err != nil {
					done <- err
					return
				}
				if err := d.WriteAt(ctx, buf, b*512, 0); err != nil {
					done <- err
					return
				}
				if err := d.ReadAt(ctx, buf, b*512); err != nil {
					done <- err
					return
				}
				d.Message(ctx, []string{"listbadblocks"})
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 0 badblock(s) found" {
		t.Fatalf("every block was written after being added: %q", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
