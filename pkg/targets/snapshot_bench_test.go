package targets

import (
	"context"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// BenchmarkSnapshotOriginWrite: 4 KiB writes to an origin with one P
// snapshot of 4 KiB chunks, where each write needs a copy and a commit
// (first), where every chunk has been copied already (rewrite), and the same
// writes to a linear target (linear) for scale.
func BenchmarkSnapshotOriginWrite(b *testing.B) {
	const chunk, chunks = 4096, 1024
	p := make([]byte, chunk)
	ctx := context.Background()
	setup := func(b *testing.B) (o, s *snapTable) {
		orig := fillPattern(b, chunks*chunk, 1)
		cow := tempFileTB(b, 2*chunks*chunk)
		o = newSnapTable(b, "snapshot-origin", chunks*8, orig)
		s = newSnapTable(b, "snapshot", chunks*8, orig, cow, "P", "8").resume()
		return o, s
	}
	b.Run("variant=first", func(b *testing.B) {
		o, s := setup(b)
		i := 0
		for b.Loop() {
			if i == chunks {
				b.StopTimer()
				s.destroy()
				o, s = setup(b)
				i = 0
				b.StartTimer()
			}
			if err := o.tg.WriteAt(ctx, p, int64(i)*chunk, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("variant=rewrite", func(b *testing.B) {
		o, _ := setup(b)
		for i := range chunks {
			o.mustWrite(p, int64(i)*chunk, 0)
		}
		i := 0
		for b.Loop() {
			if err := o.tg.WriteAt(ctx, p, int64(i%chunks)*chunk, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("variant=linear", func(b *testing.B) {
		l := newSnapTable(b, "linear", chunks*8, fillPattern(b, chunks*chunk, 2), "0")
		i := 0
		for b.Loop() {
			if err := l.tg.WriteAt(ctx, p, int64(i%chunks)*chunk, 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func tempFileTB(b testing.TB, size int64) string {
	return testkit.Sparse(b, b.TempDir(), "dev", size)
}
