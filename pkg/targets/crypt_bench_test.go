package targets

import (
	"context"
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

var benchSizes = []int{4 << 10, 1 << 20}

// BenchmarkCryptXTS is the ceiling: the target's own AES-XTS (512-bit
// key, crypt_xts.go) over buffers in memory, 512-byte sectors, with no
// I/O. (BenchmarkCryptXTSImpl sets it beside x/crypto/xts.)
func BenchmarkCryptXTS(b *testing.B) {
	key, _ := hex.DecodeString(key512)
	c, err := newXTS(key, aes.NewCipher)
	if err != nil {
		b.Fatal(err)
	}
	var scratch cryptScratch
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("op=decrypt/size=%dKiB", size>>10), func(b *testing.B) {
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			cpu := cpuTime(b)
			for b.Loop() {
				for i := 0; i < size; i += 512 {
					c.decrypt(buf[i:i+512], buf[i:i+512], uint64(i/512), &scratch)
				}
			}
			cpu.report(b, size)
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
				cpu := cpuTime(b)
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
				cpu.report(b, size)
			})
		}
	}
}

// cpuClock measures the CPU time the process spends (user and system, all
// threads), for a throughput per CPU second next to the wall-clock one: on
// a machine shared with other work the wall clock says more about the
// neighbours than about the code.
type cpuClock struct{ start time.Duration }

func cpuTime(b *testing.B) cpuClock { return cpuClock{processCPU(b)} }

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds MB per CPU second, for ops of size bytes.
func (c cpuClock) report(b *testing.B, size int) {
	if used := processCPU(b) - c.start; used > 0 {
		b.ReportMetric(float64(b.N)*float64(size)/used.Seconds()/1e6, "MB/cpu-s")
	}
}
