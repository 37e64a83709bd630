package targets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"reflect"
	"unsafe"
)

// sectorCipher encrypts and decrypts one crypt sector (sector_size bytes)
// at a time, given the sector's IV number (already made by the target from
// the offset, iv_offset and iv_large_sectors, and cut to 32 bits for
// plain). dst and src are the same slice or do not overlap. Safe for
// concurrent use: per-call state lives in the caller's scratch.
type sectorCipher interface {
	encrypt(dst, src []byte, iv uint64, s *cryptScratch)
	decrypt(dst, src []byte, iv uint64, s *cryptScratch)
}

// cryptScratch is one request's working memory, from a pool: the I/O path
// allocates nothing.
type cryptScratch struct {
	iv, next [aes.BlockSize]byte
	tweaks   [maxCryptSector]byte // xts: one crypt sector's tweaks
	bounce   []byte               // writes: the ciphertext, never the caller's buffer
}

// cbcCipher is AES-CBC restarted at every sector with the sector's IV:
// the IV number in little-endian (plain, plain64), or that block encrypted
// under the hash of the key (essiv:sha256), so that IVs cannot be guessed.
// The chaining is done here, block by block, rather than with
// cipher.NewCBCEncrypter, which would allocate a BlockMode per sector and
// copy the expanded key into it, out of reach of Destroy's wipe.
type cbcCipher struct {
	b     cipher.Block
	essiv cipher.Block // nil unless essiv
}

func (c cbcCipher) makeIV(iv uint64, s *cryptScratch) {
	clear(s.iv[:])
	binary.LittleEndian.PutUint64(s.iv[:8], iv)
	if c.essiv != nil {
		c.essiv.Encrypt(s.iv[:], s.iv[:])
	}
}

func (c cbcCipher) encrypt(dst, src []byte, iv uint64, s *cryptScratch) {
	c.makeIV(iv, s)
	prev := s.iv[:]
	for i := 0; i < len(src); i += aes.BlockSize {
		d := dst[i : i+aes.BlockSize]
		subtle.XORBytes(d, src[i:i+aes.BlockSize], prev)
		c.b.Encrypt(d, d)
		prev = d
	}
}

func (c cbcCipher) decrypt(dst, src []byte, iv uint64, s *cryptScratch) {
	c.makeIV(iv, s)
	for i := 0; i < len(src); i += aes.BlockSize {
		copy(s.next[:], src[i:i+aes.BlockSize]) // dst may be src
		d := dst[i : i+aes.BlockSize]
		c.b.Decrypt(d, src[i:i+aes.BlockSize])
		subtle.XORBytes(d, d, s.iv[:])
		s.iv = s.next
	}
}

// cryptKey is a key in use: its cipher, and the block ciphers (expanded
// keys) it holds, for wipe.
type cryptKey struct {
	cipher sectorCipher
	blocks []cipher.Block
}

// newCryptKey builds the cipher of a's key; a failure leaves nothing
// unwiped.
func newCryptKey(a *cryptArgs) (*cryptKey, error) {
	c, blocks, err := newSectorCipher(a)
	k := &cryptKey{cipher: c, blocks: blocks}
	if err != nil {
		k.wipe()
		return nil, err
	}
	return k, nil
}

// wipe overwrites the expanded keys; the key must not be used afterwards.
func (k *cryptKey) wipe() {
	for _, b := range k.blocks {
		wipeBlock(b)
	}
}

// newSectorCipher builds the cipher of a (whose cipher spec and key are
// checked) and returns the block ciphers it made, for Destroy to wipe.
func newSectorCipher(a *cryptArgs) (sectorCipher, []cipher.Block, error) {
	var blocks []cipher.Block
	newAES := func(k []byte) (cipher.Block, error) {
		b, err := aes.NewCipher(k)
		if err == nil {
			blocks = append(blocks, b)
		}
		return b, err
	}
	if a.chain == "xts" {
		c, err := newXTS(a.key, newAES)
		return c, blocks, err
	}
	b, err := newAES(a.key)
	if err != nil || a.iv != "essiv" {
		return cbcCipher{b: b}, blocks, err
	}
	salt := sha256.Sum256(a.key)
	essiv, err := newAES(salt[:])
	clear(salt[:])
	return cbcCipher{b: b, essiv: essiv}, blocks, err
}

// wipeBlock overwrites a block cipher's expanded key with zeros, and says
// whether it could. crypto/aes offers no way to do it, so this writes over
// the memory the cipher.Block points to, and only when that memory holds
// no pointers (crypto/aes's key schedule is two fixed arrays of words): a
// pointer zeroed behind the garbage collector's back could break it. The
// block must not be used afterwards.
func wipeBlock(b cipher.Block) bool {
	v := reflect.ValueOf(b)
	if v.Kind() != reflect.Pointer || v.IsNil() || hasPointers(v.Elem().Type()) {
		return false
	}
	clear(unsafe.Slice((*byte)(v.UnsafePointer()), v.Elem().Type().Size()))
	return true
}

// hasPointers says whether a value of t holds any pointer (or might).
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}
