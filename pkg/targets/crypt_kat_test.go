package targets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// blockMemory is the memory a block cipher points to (its key schedule).
func blockMemory(b cipher.Block) []byte {
	v := reflect.ValueOf(b)
	return unsafe.Slice((*byte)(v.UnsafePointer()), v.Elem().Type().Size())
}

// refXTS is XTS (IEEE 1619) written out from the standard, apart from the
// target's code: the tweak is the little-endian sector number encrypted
// under the second half of the key, doubled in GF(2^128) after each block.
func refXTS(key []byte, sector uint64, plain []byte) []byte {
	k1, _ := aes.NewCipher(key[:len(key)/2])
	k2, _ := aes.NewCipher(key[len(key)/2:])
	var t [16]byte
	binary.LittleEndian.PutUint64(t[:], sector)
	k2.Encrypt(t[:], t[:])
	out := make([]byte, len(plain))
	for i := 0; i < len(plain); i += 16 {
		var x [16]byte
		for j := range x {
			x[j] = plain[i+j] ^ t[j]
		}
		k1.Encrypt(x[:], x[:])
		for j := range x {
			out[i+j] = x[j] ^ t[j]
		}
		lo, hi := binary.LittleEndian.Uint64(t[:8]), binary.LittleEndian.Uint64(t[8:])
		carry := hi >> 63
		hi, lo = hi<<1|lo>>63, lo<<1
		lo ^= carry * 0x87
		binary.LittleEndian.PutUint64(t[:8], lo)
		binary.LittleEndian.PutUint64(t[8:], hi)
	}
	return out
}

// refCBC is CBC with the standard library's mode, the IV the sector
// number in little-endian, encrypted under sha256(key) for essiv.
func refCBC(key []byte, essiv bool, sector uint64, plain []byte) []byte {
	iv := make([]byte, 16)
	binary.LittleEndian.PutUint64(iv, sector)
	if essiv {
		h := sha256.Sum256(key)
		e, _ := aes.NewCipher(h[:])
		e.Encrypt(iv, iv)
	}
	b, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, plain)
	return out
}

// The reference XTS agrees with IEEE 1619's first vector (zero keys,
// sector 0, 32 zero bytes), so it can judge the target.
func TestRefXTSVector(t *testing.T) {
	got := hex.EncodeToString(refXTS(make([]byte, 32), 0, make([]byte, 32)))
	if want := "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e"; got != want {
		t.Fatalf("refXTS = %s, want %s", got, want)
	}
}

// What the target writes is, sector by sector, the ciphertext computed
// apart for its cipher mode and IV number; it reads back as written; the
// caller's buffer is left alone; write-zeroes writes encrypted zeros.
func TestCryptKnownAnswers(t *testing.T) {
	const big = 1<<32 + 64 // an iv_offset past 32 bits: plain cuts it, plain64 keeps it
	cases := []struct {
		cipher, key string
		ivOffset    uint64
		sectorSize  int64
		ivLarge     bool
	}{
		{"aes-xts-plain64", key256, 0, 512, false},
		{"aes-xts-plain64", key512, 24, 512, false},
		{"aes-xts-plain64", key512, big, 512, false},
		{"aes-xts-plain", key256, big, 512, false},
		{"aes-xts-plain64", key512, 16, 4096, false},
		{"aes-xts-plain64", key512, 16, 4096, true},
		{"aes-xts-plain64", key256, 0, 1024, true},
		{"aes-cbc-essiv:sha256", key256[:32], 0, 512, false},
		{"aes-cbc-essiv:sha256", key256, 40, 4096, true},
		{"aes-cbc-plain64", key256, big, 512, false},
		{"aes-cbc-plain", key256, big, 2048, false},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/%d/iv%d/large=%v", c.cipher, 4*len(c.key), c.ivOffset, c.ivLarge)
		t.Run(name, func(t *testing.T) {
			var opts []string
			if c.sectorSize != 512 {
				opts = append(opts, fmt.Sprintf("sector_size:%d", c.sectorSize))
			}
			if c.ivLarge {
				opts = append(opts, "iv_large_sectors")
			}
			args := fmt.Sprintf("%s %s %d DEV 8 %d %s", c.cipher, c.key, c.ivOffset, len(opts), strings.Join(opts, " "))
			checkKnownAnswer(t, args, c.key, c.cipher, c.ivOffset, c.sectorSize, c.ivLarge)
		})
	}
}

func checkKnownAnswer(t *testing.T, args, keyHex, cipherSpec string, ivOffset uint64, ss int64, ivLarge bool) {
	ctx := context.Background()
	c, dev := newTestCrypt(t, args, 256, 264)
	key, _ := hex.DecodeString(keyHex)
	plain := make([]byte, 8*ss)
	for i := range plain {
		plain[i] = byte(i*7 + i>>9)
	}
	orig := bytes.Clone(plain)
	off := 2 * ss
	if err := c.WriteAt(ctx, plain, off, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, orig) {
		t.Fatal("WriteAt changed the caller's buffer")
	}
	raw := make([]byte, len(plain))
	if err := dev.ReadAt(raw, 8*SectorSize+off); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < int64(len(plain)); i += ss {
		n := (uint64(off+i)/512 + ivOffset)
		if ivLarge {
			n /= uint64(ss / 512)
		}
		var want []byte
		switch cipherSpec {
		case "aes-xts-plain":
			want = refXTS(key, n&0xffffffff, plain[i:i+ss])
		case "aes-xts-plain64":
			want = refXTS(key, n, plain[i:i+ss])
		case "aes-cbc-plain":
			want = refCBC(key, false, n&0xffffffff, plain[i:i+ss])
		case "aes-cbc-plain64":
			want = refCBC(key, false, n, plain[i:i+ss])
		default:
			want = refCBC(key, true, n, plain[i:i+ss])
		}
		if !bytes.Equal(raw[i:i+ss], want) {
			t.Fatalf("crypt sector at %d (IV number %d): ciphertext differs from the reference", off+i, n)
		}
	}
	back := make([]byte, len(plain))
	if err := c.ReadAt(ctx, back, off); err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(back, plain))
	}
	if err := c.Zero(ctx, off, 2*ss, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	dev.ReadAt(raw[:2*ss], 8*SectorSize+off)
	if allZero(raw[:2*ss]) {
		t.Fatal("write-zeroes left zeros on the device, not their ciphertext")
	}
	if err := c.ReadAt(ctx, back[:3*ss], off); err != nil || !allZero(back[:2*ss]) || !bytes.Equal(back[2*ss:3*ss], plain[2*ss:3*ss]) {
		t.Fatalf("read after write-zeroes: %v", err)
	}
}
