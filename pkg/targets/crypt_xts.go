package targets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// maxCryptSector is the largest crypt sector dm-crypt takes (sector_size
// 4096), the size of the scratch's tweak buffer.
const maxCryptSector = 4096

// xtsCipher is AES-XTS (IEEE 1619) on whole blocks, as dm's xts(aes): the
// tweak is the IV number as a little-endian 128-bit value encrypted under
// the second half of the key (plain64, and plain once cut to 32 bits);
// each block's tweak is the previous one doubled in GF(2^128).
//
// It does what golang.org/x/crypto/xts does, faster: that package works a
// byte at a time around every AES call. Here a sector's tweaks are worked
// out first, as two 64-bit words per block, into the scratch; the whitening
// before and after AES is then one subtle.XORBytes over the whole sector
// (vectorised), and the loop in between is only AES calls. crypto/aes has
// no multi-block entry point for arbitrary blocks (its pipelined assembly
// is CTR and GCM, whose inputs are counters), so one Encrypt or Decrypt
// per 16 bytes is the floor.
type xtsCipher struct{ data, tweak cipher.Block }

// newXTS splits key into its data and tweak halves, each an AES key, and
// passes both blocks to keep (for Destroy's wipe).
func newXTS(key []byte, newAES func([]byte) (cipher.Block, error)) (xtsCipher, error) {
	if len(key)%2 != 0 {
		return xtsCipher{}, fmt.Errorf("targets: crypt: xts key of %d bytes is not two AES keys", len(key))
	}
	data, err := newAES(key[:len(key)/2])
	if err != nil {
		return xtsCipher{}, err
	}
	tweak, err := newAES(key[len(key)/2:])
	return xtsCipher{data: data, tweak: tweak}, err
}

// tweaks fills s.tweaks[:n] with the n/16 tweaks of the sector whose IV
// number is iv, and returns them.
func (x xtsCipher) tweaks(n int, iv uint64, s *cryptScratch) []byte {
	clear(s.iv[:])
	binary.LittleEndian.PutUint64(s.iv[:8], iv)
	x.tweak.Encrypt(s.iv[:], s.iv[:])
	lo := binary.LittleEndian.Uint64(s.iv[:8])
	hi := binary.LittleEndian.Uint64(s.iv[8:])
	clear(s.iv[:])
	for t := s.tweaks[:n]; len(t) >= aes.BlockSize; t = t[aes.BlockSize:] {
		binary.LittleEndian.PutUint64(t[:8], lo)
		binary.LittleEndian.PutUint64(t[8:16], hi)
		lo, hi = xtsDouble(lo, hi)
	}
	return s.tweaks[:n]
}

// xtsDouble multiplies the tweak (lo, hi) by x in GF(2^128), modulo
// x^128 + x^7 + x^2 + x + 1, in XTS's little-endian bit order: a shift
// left by one, the bit carried out of the top folded back in as 0x87.
func xtsDouble(lo, hi uint64) (uint64, uint64) {
	carry := hi >> 63
	return lo<<1 ^ carry*0x87, hi<<1 | lo>>63
}

func (x xtsCipher) encrypt(dst, src []byte, iv uint64, s *cryptScratch) {
	x.crypt(dst, src, iv, s, false)
}

func (x xtsCipher) decrypt(dst, src []byte, iv uint64, s *cryptScratch) {
	x.crypt(dst, src, iv, s, true)
}

// crypt whitens src (one crypt sector, at most maxCryptSector bytes) with
// the sector's tweaks into dst, runs the data key's Encrypt (or Decrypt)
// over each of its blocks in place, and whitens the result again. The
// tweaks are then cleared from the scratch, which outlives the request in
// a pool: they are meant to be secret (whoever knew two blocks' tweaks
// could move a ciphertext block from one place to the other and have it
// decrypt to the same plaintext there).
func (x xtsCipher) crypt(dst, src []byte, iv uint64, s *cryptScratch, decrypt bool) {
	t := x.tweaks(len(src), iv, s)
	dst = dst[:len(t)]
	subtle.XORBytes(dst, src, t)
	// Two loops, not a method value: that would add a call per block.
	if decrypt {
		for b := dst; len(b) >= aes.BlockSize; b = b[aes.BlockSize:] {
			x.data.Decrypt(b[:aes.BlockSize], b[:aes.BlockSize])
		}
	} else {
		for b := dst; len(b) >= aes.BlockSize; b = b[aes.BlockSize:] {
			x.data.Encrypt(b[:aes.BlockSize], b[:aes.BlockSize])
		}
	}
	subtle.XORBytes(dst, dst, t)
	clear(t)
}
