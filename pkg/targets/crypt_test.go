package targets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

const (
	key256 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	key512 = key256 + "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"
)

// newTestCrypt checks and builds a crypt target of sectors over a fresh
// file of devSectors, args given with "DEV" for the file.
func newTestCrypt(t *testing.T, args string, sectors, devSectors uint64) (*crypt, *Dev) {
	t.Helper()
	devs := NewDevSet(false)
	t.Cleanup(func() { devs.Close() })
	c := newCryptOn(t, args, tempFile(t, int64(devSectors)*SectorSize), sectors, devs)
	return c, devs.Devs()[0]
}

func TestCryptCheck(t *testing.T) {
	k := key256
	cases := []struct {
		args    string
		sectors uint64
		want    string // canonical args, or "" with err
		err     error
	}{
		{"aes-xts-plain64 " + k + " 0 /d 0", 8, "aes-xts-plain64 " + k + " 0 /d 0", nil},
		{"aes-xts-plain64 " + strings.ToUpper(key512) + " 8 /d 16", 8, "aes-xts-plain64 " + key512 + " 8 /d 16", nil},
		{"aes-xts-plain " + k + " 0 /d 0", 8, "aes-xts-plain " + k + " 0 /d 0", nil},
		{"aes-cbc-essiv:sha256 " + k[:32] + " 0 /d 0", 8, "aes-cbc-essiv:sha256 " + k[:32] + " 0 /d 0", nil},
		{"aes-cbc-essiv:sha256 " + k + " 0 /d 0", 8, "aes-cbc-essiv:sha256 " + k + " 0 /d 0", nil},
		{"aes " + k[:32] + " 0 /d 0", 8, "aes " + k[:32] + " 0 /d 0", nil}, // dm's cbc-plain
		{"aes:1-xts-plain64 " + k + " 0 /d 0", 8, "aes:1-xts-plain64 " + k + " 0 /d 0", nil},
		// dm reads the key count with sscanf's %u, and ignores the
		// options of an IV mode that takes none (the oracle saw both).
		{"aes:01-xts-plain64 " + k + " 0 /d 0", 8, "aes:01-xts-plain64 " + k + " 0 /d 0", nil},
		{"aes-xts-plain64:sha256 " + k + " 0 /d 0", 8, "aes-xts-plain64:sha256 " + k + " 0 /d 0", nil},
		{"aes-cbc-plain:foo " + k[:32] + " 0 /d 0", 8, "aes-cbc-plain:foo " + k[:32] + " 0 /d 0", nil},
		{"aes-xts-plain64: " + k + " 0 /d 0", 8, "aes-xts-plain64: " + k + " 0 /d 0", nil},
		// Optional parameters: dm's order, defaults dropped, case folded.
		{"aes-xts-plain64 " + k + " 0 /d 0 0", 8, "aes-xts-plain64 " + k + " 0 /d 0", nil},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:512", 8, "aes-xts-plain64 " + k + " 0 /d 0", nil},
		{"aes-xts-plain64 " + k + " 16 /d 0 8 iv_large_sectors sector_size:4096 no_write_workqueue NO_READ_WORKQUEUE submit_from_crypt_cpus same_cpu_crypt allow_discards allow_discards", 16,
			"aes-xts-plain64 " + k + " 16 /d 0 7 allow_discards same_cpu_crypt submit_from_crypt_cpus no_read_workqueue no_write_workqueue sector_size:4096 iv_large_sectors", nil},
		// Refusals.
		{"aes-xts-plain64 " + k + " 0 /d", 8, "", ErrArgCount},
		{"aes-xts-plain64 " + k + " 0 /d 0 2 allow_discards", 8, "", ErrArgCount},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 allow_discards extra", 8, "", ErrArgCount},
		{"aes-xts-plain64 " + k + " 0 /d 0 9 a b c d e f g h i", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 +1 allow_discards", 8, "", ErrNotNumber}, // dm 6.1: EINVAL
		{"aes-xts-plain64 " + k + " +0 /d 0", 8, "", ErrNotNumber},                  // dm reads iv_offset and offset with sscanf: no '+'
		{"aes-xts-plain64 " + k + " 0 /d +0", 8, "", ErrNotNumber},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:+4096", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 x", 8, "", ErrNotNumber},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:1024", 9, "", ErrCryptLength},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:8192", 16, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:768", 6, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 sector_size:256", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 SECTOR_SIZE:4096", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 integrity:28:aead", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 0 /d 0 1 high_priority", 8, "", ErrCryptOption},
		{"aes-xts-plain64 " + k + " 4 /d 0 1 sector_size:4096", 8, "", ErrCryptIVAlign},
		{"aes-xts-plain64 " + k + " 0 /d 4 1 sector_size:4096", 8, "", ErrCryptStart}, // dm's table: start=4 not aligned
		{"aes-xts-plain64 " + k + " 0 /d 6 1 sector_size:1024", 8, "aes-xts-plain64 " + k + " 0 /d 6 1 sector_size:1024", nil},
		{"aes-xts-plain64 " + k + " -1 /d 0", 8, "", ErrNegative},
		{"aes-xts-plain64 " + k + " 0 /d 18446744073709551615", 8, "", ErrOverflow},
		{"aes-xts-plain64 " + k[:32] + " 0 /d 0", 8, "", ErrCryptKey},
		{"aes-cbc-essiv:sha256 " + key512 + " 0 /d 0", 8, "", ErrCryptKey},
		{"aes-xts-plain64 " + k[:63] + " 0 /d 0", 8, "", ErrCryptKey},
		{"aes-xts-plain64 " + k + "0 0 /d 0", 8, "", ErrCryptKey}, // dm would drop the odd digit
		{"aes-xts-plain64 " + k[:62] + "zz 0 /d 0", 8, "", ErrCryptKey},
		{"aes-xts-plain64 - 0 /d 0", 8, "", ErrCryptKey},
		{"aes-xts-plain64 :32:logon:my:key 0 /d 0", 8, "", ErrCryptKey},
		{"capi:xts(aes)-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"serpent-xts-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes:2-xts-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-ecb " + k[:32] + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-ctr-plain64 " + k[:32] + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-xts-benbi " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-cbc-essiv " + k[:32] + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-cbc-essiv:md5 " + k[:32] + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-xts-essiv:sha256 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes:-xts-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher}, // an empty key count: sscanf finds no number
		{"aes:+1-xts-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes:3-xts-plain64 " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-xts-plain64-x " + k + " 0 /d 0", 8, "", ErrCryptCipher},
		{"aes-xts-plain64 " + k + " 0  0", 8, "", ErrEmptyPath},
	}
	for _, c := range cases {
		got, err := checkCrypt(strings.Split(c.args, " "), c.sectors)
		if !errors.Is(err, c.err) || strings.Join(got, " ") != c.want {
			t.Errorf("check %q (%d sectors) = %q, %v; want %q, %v", c.args, c.sectors, got, err, c.want, c.err)
		}
		if err != nil && strings.Contains(err.Error(), k[:16]) {
			t.Errorf("check %q: the error quotes the key: %v", c.args, err)
		}
	}
}

// The TABLE status is the canonical line with the key as zeros, as
// dmsetup prints it; INFO is empty.
func TestCryptStatusMasksTheKey(t *testing.T) {
	c, _ := newTestCrypt(t, "aes-xts-plain64 "+strings.ToUpper(key512)+" 8 DEV 8 2 allow_discards sector_size:4096", 16, 32)
	got := c.Status(StatusTable)
	want := "aes-xts-plain64 " + strings.Repeat("0", 128) + " 8 " + c.dev.Path() + " 8 2 allow_discards sector_size:4096"
	if got != want {
		t.Fatalf("TABLE status\n got %q\nwant %q", got, want)
	}
	if c.Status(StatusInfo) != "" {
		t.Fatalf("INFO status %q", c.Status(StatusInfo))
	}
	if c.LogicalBlockSize() != 4096 {
		t.Fatalf("logical block size %d", c.LogicalBlockSize())
	}
}

// Destroy overwrites every expanded key with zeros.
func TestCryptDestroyWipesKeys(t *testing.T) {
	for _, args := range []string{"aes-xts-plain64 " + key512 + " 0 DEV 0", "aes-cbc-essiv:sha256 " + key256 + " 0 DEV 0"} {
		c, _ := newTestCrypt(t, args, 8, 8)
		blocks := c.key.Load().blocks
		if len(blocks) != 2 {
			t.Fatalf("%s: %d block ciphers, want 2", args, len(blocks))
		}
		for _, b := range blocks {
			if allZero(blockMemory(b)) {
				t.Fatalf("%s: a key schedule is zero before Destroy", args)
			}
		}
		if err := c.Destroy(); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if !allZero(blockMemory(b)) {
				t.Fatalf("%s: a key schedule survived Destroy", args)
			}
		}
	}
}

func allZero(p []byte) bool { return bytes.Count(p, []byte{0}) == len(p) }

// Requests must be whole crypt sectors; a discard needs allow_discards; a
// fast zero is refused; every extent is data; splicing is declined.
func TestCryptRefusals(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCrypt(t, "aes-xts-plain64 "+key256+" 0 DEV 0 1 sector_size:4096", 16, 16)
	buf := make([]byte, 8192)
	for _, r := range []struct{ off, n int64 }{{512, 4096}, {0, 512}, {4096, 4608}} {
		if err := c.ReadAt(ctx, buf[:r.n], r.off); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("read %d@%d: %v, want EINVAL", r.n, r.off, err)
		}
		if err := c.WriteAt(ctx, buf[:r.n], r.off, 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("write %d@%d: %v, want EINVAL", r.n, r.off, err)
		}
		if err := c.Zero(ctx, r.off, r.n, ZeroFlags{}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("zero %d@%d: %v, want EINVAL", r.n, r.off, err)
		}
	}
	if err := c.Trim(ctx, 0, 4096); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("trim without allow_discards: %v", err)
	}
	d, dev := newTestCrypt(t, "aes-xts-plain64 "+key256+" 0 DEV 0 2 allow_discards sector_size:4096", 16, 16)
	if err := d.Trim(ctx, 512, 4096); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("unaligned trim: %v, want EINVAL", err)
	}
	d.WriteAt(ctx, buf, 0, 0)
	if err := d.Trim(ctx, 4096, 4096); err != nil {
		t.Errorf("trim with allow_discards: %v", err)
	}
	got := collect(t, func(off, n int64, emit func(Extent) bool) error { return dev.Extents(off, n, emit) }, 0, 8192)
	if len(got) != 2 || got[1].Flags&ExtentHole == 0 {
		t.Errorf("the device after a trim of its second 4 KiB: %v, want data then a hole", got)
	}
	if err := c.Zero(ctx, 0, 4096, ZeroFlags{Fast: true}); err != ErrNotSupported {
		t.Errorf("fast zero: %v", err)
	}
	if err := c.SpliceTo(ctx, -1, 0, 4096); err != ErrPipeFull {
		t.Errorf("splice: %v", err)
	}
	got = collect(t, func(off, n int64, emit func(Extent) bool) error { return c.Extents(ctx, off, n, emit) }, 0, 8192)
	if len(got) != 1 || got[0] != (Extent{Length: 8192}) {
		t.Errorf("extents of a fresh (sparse) device: %v, want one data extent", got)
	}
}

// A crypt target the table starts 7 sectors into a 4096-byte block (dm
// splits a block between targets over 512-byte disks): dm-crypt checks a
// bio's alignment on the mapped device, so the block wholly inside the
// target is served from target sector 1 (IV 1), and the pieces the table
// cut at the target's edges are killed with EIO, where a request that is
// not whole blocks is the kernel's EINVAL. A discard goes down before
// dm-crypt's check: the cut pieces pass.
func TestCryptPlacedInsideABlock(t *testing.T) {
	ctx := context.Background()
	c, dev := newTestCrypt(t, "aes-xts-plain64 "+key256+" 0 DEV 0 2 allow_discards sector_size:4096", 16, 16)
	c.Place(7)
	want := bytes.Repeat([]byte("placed!!"), 512)
	if err := c.WriteAt(ctx, want, 512, 0); err != nil {
		t.Fatalf("write of the block inside the target: %v", err)
	}
	got := make([]byte, 4096)
	if err := c.ReadAt(ctx, got, 512); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read of the block inside the target: %v, data equal %v", err, bytes.Equal(got, want))
	}
	raw := make([]byte, 4096)
	if err := dev.ReadAt(raw, 512); err != nil {
		t.Fatal(err)
	}
	c.key.Load().cipher.decrypt(raw, raw, 1, new(cryptScratch))
	if !bytes.Equal(raw, want) {
		t.Fatal("the block at target sector 1 is not encrypted with IV 1")
	}
	buf := make([]byte, 8192)
	for _, r := range []struct {
		off, n int64
		want   syscall.Errno
	}{
		{0, 512, syscall.EIO},     // the target's first sector, the end of block 0
		{4608, 3584, syscall.EIO}, // the target's last 7 sectors, the start of block 2
		{0, 4608, syscall.EIO},
		{1024, 4096, syscall.EINVAL}, // not whole blocks of the device
		{512, 1024, syscall.EINVAL},
		{4608, 512, syscall.EINVAL},
	} {
		if err := c.ReadAt(ctx, buf[:r.n], r.off); !errors.Is(err, r.want) {
			t.Errorf("read %d@%d: %v, want %v", r.n, r.off, err, r.want)
		}
		if err := c.WriteAt(ctx, buf[:r.n], r.off, 0); !errors.Is(err, r.want) {
			t.Errorf("write %d@%d: %v, want %v", r.n, r.off, err, r.want)
		}
		if err := c.Zero(ctx, r.off, r.n, ZeroFlags{}); !errors.Is(err, r.want) {
			t.Errorf("zero %d@%d: %v, want %v", r.n, r.off, err, r.want)
		}
		if err := c.Trim(ctx, r.off, r.n); (r.want == syscall.EIO) != (err == nil) {
			t.Errorf("trim %d@%d: %v, want it to pass down iff dm-crypt would see it (%v)", r.n, r.off, err, r.want)
		}
	}
}
