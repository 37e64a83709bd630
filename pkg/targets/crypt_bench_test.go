package targets

import (
	"context"
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"golang.org/x/crypto/xts"
)

var benchSizes = []int{4 << 10, 1 << 20}

// BenchmarkCryptXTS is the ceiling: AES-XTS (512-bit key) over buffers in
// memory, 512-byte sectors, with no I/O.
func BenchmarkCryptXTS(b *testing.B) {
	key, _ := hex.DecodeString(key512)
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("op=decrypt/size=%dKiB", size>>10), func(b *testing.B) {
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				for i := 0; i < size; i += 512 {
					c.Decrypt(buf[i:i+512], buf[i:i+512], uint64(i/512))
				}
			}
		})
	}
}

// BenchmarkCryptTarget is the target's ReadAt and WriteAt over a file in
// tmpfs (/dev/shm), so that the device costs a memory copy and no more.
func BenchmarkCryptTarget(b *testing.B) {
	const devSize = 64 << 20
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		b.Skip("no /dev/shm")
	}
	f, err := os.CreateTemp(dir, "gdm-crypt-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.Truncate(devSize)
	f.Close()
	devs := NewDevSet(false)
	defer devs.Close()
	tg, err := newCrypt([]string{"aes-xts-plain64", key512, "0", f.Name(), "0"}, devSize/SectorSize, devs)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, op := range []string{"read", "write"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("op=%s/size=%dKiB", op, size>>10), func(b *testing.B) {
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				off := int64(0)
				for b.Loop() {
					if op == "read" {
						err = tg.ReadAt(ctx, buf, off)
					} else {
						err = tg.WriteAt(ctx, buf, off, 0)
					}
					if err != nil {
						b.Fatal(err)
					}
					off = (off + int64(size)) % devSize
				}
			})
		}
	}
}
