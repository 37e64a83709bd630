package targets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
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
	viaCBC := newXTSDecryptViaCBC(ours)
	return []xtsImpl{
		{"x-crypto-xts", ref.Encrypt, ref.Decrypt},
		{"gdm", func(d, sr []byte, iv uint64) { ours.encrypt(d, sr, iv, s) },
			func(d, sr []byte, iv uint64) { ours.decrypt(d, sr, iv, s) }},
		{"cbc-trick", nil, func(d, sr []byte, iv uint64) { viaCBC.decrypt(d, sr, iv, s) }},
	}
}

// xtsDecryptViaCBC is the idea of decrypting XTS with crypto/cipher's CBC
// decrypter, measured and set aside: with X_i = C_i xor T_i, CBC over X
// from a zero IV gives D(X_i) xor X_(i-1), so P_i is that xor X_(i-1) xor
// T_i. On amd64 the CBC decrypter is a loop of single-block calls (only
// ppc64 and s390x have assembly for it), so nothing is gained, and it
// holds a copy of the key schedule that Destroy would have to find.
type xtsDecryptViaCBC struct {
	x   xtsCipher
	cbc cipher.BlockMode
	buf []byte
}

func newXTSDecryptViaCBC(x xtsCipher) *xtsDecryptViaCBC {
	return &xtsDecryptViaCBC{x: x, cbc: cipher.NewCBCDecrypter(x.data, make([]byte, 16)),
		buf: make([]byte, maxCryptSector)}
}

func (v *xtsDecryptViaCBC) decrypt(dst, src []byte, iv uint64, s *cryptScratch) {
	n := len(src)
	t := v.x.tweaks(n, iv, s)
	x := v.buf[:n]
	subtle.XORBytes(x, src, t)
	v.cbc.(interface{ SetIV([]byte) }).SetIV(s.iv[:]) // zeros: tweaks cleared it
	v.cbc.CryptBlocks(dst[:n], x)
	subtle.XORBytes(dst[aes.BlockSize:n], dst[aes.BlockSize:n], x[:n-aes.BlockSize])
	subtle.XORBytes(dst[:n], dst[:n], t)
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
			if f == nil {
				continue
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

// BenchmarkCryptAESFloor is one AES-256 Encrypt (or Decrypt) call per 16
// bytes and nothing else: the most any XTS built on cipher.Block can reach.
func BenchmarkCryptAESFloor(b *testing.B) {
	const size = 1 << 20
	blk, _ := aes.NewCipher(make([]byte, 32))
	buf := make([]byte, size)
	for _, op := range []string{"encrypt", "decrypt"} {
		f := blk.Encrypt
		if op == "decrypt" {
			f = blk.Decrypt
		}
		b.Run("op="+op, func(b *testing.B) {
			b.SetBytes(size)
			cpu := cpuTime(b)
			for b.Loop() {
				for i := 0; i < size; i += aes.BlockSize {
					f(buf[i:i+16], buf[i:i+16])
				}
			}
			cpu.report(b, size)
		})
	}
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

// The CBC idea measured above does decrypt XTS, in place and not: its
// numbers are those of a correct decrypter.
func TestCryptXTSDecryptViaCBC(t *testing.T) {
	key, _ := hex.DecodeString(key512)
	x := mustXTS(t, key)
	v := newXTSDecryptViaCBC(x)
	s := new(cryptScratch)
	for _, ss := range []int{512, 4096} {
		plain := bytes.Repeat([]byte("sixteen bytes ok"), ss/16)
		ct := make([]byte, ss)
		x.encrypt(ct, plain, 1<<40+3, s)
		got := make([]byte, ss)
		v.decrypt(got, ct, 1<<40+3, s)
		v.decrypt(ct, ct, 1<<40+3, s)
		if !bytes.Equal(got, plain) || !bytes.Equal(ct, plain) {
			t.Fatalf("sector %d: the CBC route does not decrypt", ss)
		}
	}
}
