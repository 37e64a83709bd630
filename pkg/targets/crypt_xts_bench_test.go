package targets

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"fmt"
	"testing"

	"golang.org/x/crypto/xts"
)

// xtsImpl is one AES-XTS implementation under benchmark, as a function
// over one sector.
type xtsImpl struct {
	name     string
	enc, dec func(dst, src []byte, iv uint64)
}

func benchXTSImpls(b *testing.B) []xtsImpl {
	key, _ := hex.DecodeString(key512)
	ref, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		b.Fatal(err)
	}
	ours, err := newXTS(key, aes.NewCipher)
	if err != nil {
		b.Fatal(err)
	}
	s := new(cryptScratch)
	return []xtsImpl{
		{"x-crypto-xts", ref.Encrypt, ref.Decrypt},
		{"gdm", func(d, sr []byte, iv uint64) { ours.encrypt(d, sr, iv, s) },
			func(d, sr []byte, iv uint64) { ours.decrypt(d, sr, iv, s) }},
	}
}

// BenchmarkCryptXTSImpl compares the target's AES-XTS (512-bit key) with
// golang.org/x/crypto/xts, in memory, over 1 MiB in 512-byte and 4 KiB
// crypt sectors, in place as the target's reads decrypt.
func BenchmarkCryptXTSImpl(b *testing.B) {
	const size = 1 << 20
	buf := make([]byte, size)
	for _, impl := range benchXTSImpls(b) {
		for _, op := range []string{"encrypt", "decrypt"} {
			f := impl.enc
			if op == "decrypt" {
				f = impl.dec
			}
			for _, ss := range []int{512, 4096} {
				b.Run(fmt.Sprintf("impl=%s/op=%s/sector=%d", impl.name, op, ss), func(b *testing.B) {
					b.SetBytes(size)
					cpu := cpuTime(b)
					for b.Loop() {
						for i := 0; i < size; i += ss {
							f(buf[i:i+ss], buf[i:i+ss], uint64(i/ss))
						}
					}
					cpu.report(b, size)
				})
			}
		}
	}
}

// BenchmarkCryptAESFloor is one AES-256 Encrypt call per 16 bytes and
// nothing else: the most any XTS built on cipher.Block can reach.
func BenchmarkCryptAESFloor(b *testing.B) {
	const size = 1 << 20
	blk, _ := aes.NewCipher(make([]byte, 32))
	buf := make([]byte, size)
	b.SetBytes(size)
	cpu := cpuTime(b)
	for b.Loop() {
		for i := 0; i < size; i += aes.BlockSize {
			blk.Encrypt(buf[i:i+16], buf[i:i+16])
		}
	}
	cpu.report(b, size)
}

// BenchmarkCryptCBCDecrypt is crypto/cipher's CBC decrypter over 4 KiB
// chunks, the multi-block path an XTS decrypt could borrow.
func BenchmarkCryptCBCDecrypt(b *testing.B) {
	const size = 1 << 20
	blk, _ := aes.NewCipher(make([]byte, 32))
	buf := make([]byte, size)
	m := cipher.NewCBCDecrypter(blk, make([]byte, 16))
	b.SetBytes(size)
	cpu := cpuTime(b)
	for b.Loop() {
		for i := 0; i < size; i += 4096 {
			m.CryptBlocks(buf[i:i+4096], buf[i:i+4096])
		}
	}
	cpu.report(b, size)
}
