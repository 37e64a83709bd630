package table

import "testing"

// Head is Line without its arguments, and allocates nothing.
func TestHeadIsLineWithoutArgs(t *testing.T) {
	tb := mustTable(t, "0 8 zero\n8 16 error\n24 8 zero\n")
	defer tb.destroy(discardLog(), false)
	for i := range tb.Len() {
		want := tb.Line(i)
		want.Args = nil
		if got := tb.Head(i); got.Start != want.Start || got.Length != want.Length || got.Type != want.Type || got.Args != nil {
			t.Errorf("Head(%d) = %+v, want %+v", i, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { tb.Head(1) }); n != 0 {
		t.Errorf("Head allocates %v times", n)
	}
}
