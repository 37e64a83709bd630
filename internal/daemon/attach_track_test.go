package daemon

import (
	"testing"
)

// tracked counts the connections the attacher remembers, over all indexes.
func (a *attacher) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, chans := range a.served {
		n += len(chans)
	}
	return n
}

// openEnds makes n kernel ends whose server side is still open.
func openEnds(n int) []*kernelEnd {
	ends := make([]*kernelEnd, n)
	for i := range ends {
		ends[i] = &kernelEnd{served: make(chan struct{})}
	}
	return ends
}

// An index tracked again (a device reconnected at each repair, an index
// the kernel hands out anew) keeps only the connections still served:
// those the server let go of are dropped, so the list does not grow with
// every reconnect.
func TestTrackForgetsConnectionsLetGo(t *testing.T) {
	a := &attacher{served: map[int][]chan struct{}{}}
	first := openEnds(4)
	a.track(0, first)
	for _, e := range first[:3] {
		close(e.served)
	}
	for range 10 {
		next := openEnds(4)
		a.track(0, next)
		if got := a.tracked(); got != 5 {
			t.Fatalf("%d connections tracked, want the 4 new and 1 still served", got)
		}
		for _, e := range next {
			close(e.served)
		}
	}
	if !a.connected(0) {
		t.Fatal("the connection still served was forgotten")
	}
}
