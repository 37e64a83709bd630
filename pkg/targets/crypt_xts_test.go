package targets

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/xts"
)

// xtsCounting is the bytes 0 to 255 twice, in hex: IEEE 1619's plaintext
// for its 512-byte data units.
var xtsCounting = func() string {
	var b [256]byte
	for i := range b {
		b[i] = byte(i)
	}
	return strings.Repeat(hex.EncodeToString(b[:]), 2)
}()

func mustXTS(t testing.TB, key []byte) xtsCipher {
	t.Helper()
	x, err := newXTS(key, aes.NewCipher)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// The cipher gives IEEE 1619's ciphertexts, out of place and in place, and
// decrypts them back.
func TestCryptXTSVectors(t *testing.T) {
	s := new(cryptScratch)
	for _, v := range ieee1619 {
		key, _ := hex.DecodeString(v.key)
		pt, _ := hex.DecodeString(v.pt)
		ct, _ := hex.DecodeString(v.ct)
		x := mustXTS(t, key)
		got := make([]byte, len(pt))
		x.encrypt(got, pt, v.dusn, s)
		if !bytes.Equal(got, ct) {
			t.Fatalf("vector %d: encrypt gave %x", v.n, got)
		}
		x.decrypt(got, got, v.dusn, s)
		if !bytes.Equal(got, pt) {
			t.Fatalf("vector %d: in-place decrypt gave %x", v.n, got)
		}
		x.encrypt(got, got, v.dusn, s)
		back := make([]byte, len(ct))
		x.decrypt(back, got, v.dusn, s)
		if !bytes.Equal(got, ct) || !bytes.Equal(back, pt) {
			t.Fatalf("vector %d: in-place encrypt or out-of-place decrypt differs", v.n)
		}
	}
}

// On random keys (each AES size), sector sizes, IV numbers and data, the
// cipher agrees with golang.org/x/crypto/xts both ways, whether dst is src
// or not, with one scratch reused across sizes as the pool reuses it.
func TestCryptXTSMatchesXCrypto(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1619))
	s := new(cryptScratch)
	for _, keyLen := range []int{32, 48, 64} {
		for _, ss := range []int{512, 1024, 2048, 4096} {
			key := randBytes(rng, keyLen)
			ref, err := xts.NewCipher(aes.NewCipher, key)
			if err != nil {
				t.Fatal(err)
			}
			x := mustXTS(t, key)
			for _, iv := range []uint64{0, 1, 1<<32 - 1, 1 << 32, ^uint64(0), rng.Uint64(), rng.Uint64()} {
				name := fmt.Sprintf("key=%d/sector=%d/iv=%#x", keyLen, ss, iv)
				plain := randBytes(rng, ss)
				want := make([]byte, ss)
				ref.Encrypt(want, plain, iv)
				got := make([]byte, ss)
				x.encrypt(got, plain, iv, s)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: encrypt differs from x/crypto/xts", name)
				}
				ref.Decrypt(want, plain, iv) // plain taken as a ciphertext
				copy(got, plain)
				x.decrypt(got, got, iv, s)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: in-place decrypt differs from x/crypto/xts", name)
				}
			}
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Doubling carries the top bit of the high word into the reduction byte
// 0x87 and the top bit of the low word into the high word, as the
// byte-wise doubling of the standard does.
func TestCryptXTSDouble(t *testing.T) {
	cases := []struct{ lo, hi, wantLo, wantHi uint64 }{
		{1, 0, 2, 0},
		{1 << 63, 0, 0, 1},
		{0, 1 << 63, 0x87, 0},
		{1<<63 | 1, 1<<63 | 1, 0x87 ^ 2, 3},
	}
	for _, c := range cases {
		if lo, hi := xtsDouble(c.lo, c.hi); lo != c.wantLo || hi != c.wantHi {
			t.Errorf("double(%#x, %#x) = %#x, %#x; want %#x, %#x", c.lo, c.hi, lo, hi, c.wantLo, c.wantHi)
		}
	}
}

// A sector costs no allocation: the tweaks live in the caller's scratch.
func TestCryptXTSAllocs(t *testing.T) {
	key, _ := hex.DecodeString(key512)
	x := mustXTS(t, key)
	s := new(cryptScratch)
	buf := make([]byte, 4096)
	if n := testing.AllocsPerRun(20, func() {
		x.encrypt(buf, buf, 7, s)
		x.decrypt(buf, buf, 7, s)
	}); n != 0 {
		t.Fatalf("%v allocations per sector", n)
	}
}

// The target's xts cipher holds exactly the two block ciphers Destroy
// wipes, and no other copy of a key schedule.
func TestCryptXTSBlocksAreWiped(t *testing.T) {
	c, _ := newTestCrypt(t, "aes-xts-plain64 "+key512+" 0 DEV 0", 8, 8)
	k := c.key.Load()
	x, ok := k.cipher.(xtsCipher)
	if !ok {
		t.Fatalf("cipher is %T", k.cipher)
	}
	if len(k.blocks) != 2 || k.blocks[0] != x.data || k.blocks[1] != x.tweak {
		t.Fatalf("blocks %v are not the cipher's data and tweak blocks", k.blocks)
	}
	c.Destroy()
	if !allZero(blockMemory(x.data)) || !allZero(blockMemory(x.tweak)) {
		t.Fatal("a key schedule survived Destroy")
	}
}
