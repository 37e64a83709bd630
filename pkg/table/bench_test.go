package table

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// benchDir is tmpfs when there is one, so the benchmarks time gdm, not a disk.
func benchDir(b *testing.B) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "gdm-bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

func BenchmarkGetPut(b *testing.B) {
	d := newLiveDevice(b, "0 8 zero")
	defer d.Close()
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			t, _ := d.Get(ctx)
			t.Put()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t, _ := d.Get(ctx)
				t.Put()
			}
		})
	})
}

// BenchmarkRead4K compares a 4 KiB random read through gdm's tables with a
// plain ReadAt on the same tmpfs file.
func BenchmarkRead4K(b *testing.B) {
	const size = 256 << 20
	dir := benchDir(b)
	var legs []string
	for i := range 4 {
		p := testkit.Sparse(b, dir, fmt.Sprintf("leg%d", i), size/4)
		if err := os.WriteFile(p, make([]byte, size/4), 0o600); err != nil { // allocate
			b.Fatal(err)
		}
		legs = append(legs, p)
	}
	sectors := size / 4 / 512
	tables := []struct{ name, text string }{
		{"linear", fmt.Sprintf("0 %d linear %s 0", sectors, legs[0])},
		{"striped4", fmt.Sprintf("0 %d striped 4 128 %s 0 %s 0 %s 0 %s 0", sectors, legs[0], legs[1], legs[2], legs[3])},
	}
	offsets := make([]int64, 4096)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range offsets {
		offsets[i] = r.Int64N(int64(sectors*512)/4096) * 4096
	}
	b.Run("plain-ReadAt", func(b *testing.B) {
		f, err := os.Open(legs[0])
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		b.SetBytes(4096)
		i := 0
		for b.Loop() {
			if _, err := f.ReadAt(buf, offsets[i&4095]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	for _, tc := range tables {
		b.Run(tc.name+"/table-only", func(b *testing.B) {
			tb := mustTable(b, tc.text)
			defer tb.destroy(discardLog(), false)
			buf := make([]byte, 4096)
			b.SetBytes(4096)
			i := 0
			for b.Loop() {
				if err := tb.ReadAt(context.Background(), buf, offsets[i&4095]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(tc.name+"/device", func(b *testing.B) {
			d := newLiveDevice(b, tc.text)
			defer d.Close()
			benchDeviceRead(b, d, offsets)
		})
		// With the latency histograms on, as gdm serve keeps them when it
		// exports metrics.
		b.Run(tc.name+"/device-timed", func(b *testing.B) {
			d := newLiveDevice(b, tc.text)
			defer d.Close()
			d.TimeIO(true)
			benchDeviceRead(b, d, offsets)
		})
	}
}

func benchDeviceRead(b *testing.B, d *Device, offsets []int64) {
	ctx := context.Background()
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	i := 0
	for b.Loop() {
		if err := d.ReadAt(ctx, buf, offsets[i&4095]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
