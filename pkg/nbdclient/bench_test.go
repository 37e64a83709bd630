package nbdclient

import (
	"context"
	"fmt"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// BenchmarkReadAt reads through the client from gdm's own server on a
// UNIX socket, with 16 readers in parallel (requests in flight at once).
func BenchmarkReadAt(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			m := nbdtest.NewMem(64 << 20)
			s := nbdtest.Start(b, nbdtest.Exports{"a": m})
			cl, err := Dial(context.Background(), Options{Network: "unix", Address: s.Path, Export: "a"})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			b.SetBytes(int64(size))
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				p := make([]byte, size)
				var off int64
				for pb.Next() {
					if err := cl.ReadAt(context.Background(), p, off); err != nil {
						b.Error(err)
						return
					}
					off = (off + int64(size)) % (64 << 20)
				}
			})
		})
	}
}
