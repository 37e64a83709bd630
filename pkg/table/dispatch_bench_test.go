package table

import (
	"context"
	"testing"
)

// BenchmarkDispatch times what a table and a device add to an I/O, without
// a system call to drown it: 512-byte reads from zero targets, through the
// table alone and through the device (Get, the table, Put, the counters),
// on a one-target table and across a boundary of a three-target one. It
// uses only calls that exist before and after the Target interface grew
// contexts, so that one file benchmarks both.
func BenchmarkDispatch(b *testing.B) {
	for _, c := range []struct{ name, text string }{
		{"one-target", "0 64 zero"},
		{"split", "0 8 zero\n8 8 zero\n16 48 zero"},
	} {
		b.Run(c.name+"/table-only", func(b *testing.B) {
			tb := mustTable(b, c.text)
			defer tb.destroy(discardLog(), false)
			p := make([]byte, 512)
			for b.Loop() {
				if err := tb.ReadAt(context.Background(), p, 7*512+256); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/device", func(b *testing.B) {
			d := newLiveDevice(b, c.text)
			defer d.Close()
			ctx := context.Background()
			p := make([]byte, 512)
			for b.Loop() {
				if err := d.ReadAt(ctx, p, 7*512+256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
