package nbdserver

import (
	"sync"
	"sync/atomic"
)

// Buffer pools by power-of-two size, 4 KiB to maxPooled. Larger buffers
// (up to MaxBlockSize) are made for each request and left to the garbage
// collector: a pool keeps what it holds across one collection, so a burst
// of 32 MiB reads would keep hundreds of MiB resident long after it ended.
// Requests that large are rare and slow enough that making their buffer
// is a small part of their cost.
const minPoolShift, maxPoolShift = 12, 20

const maxPooled = 1 << maxPoolShift

var pools [maxPoolShift - minPoolShift + 1]sync.Pool

func poolIndex(n int) int {
	i := 0
	for (1 << (minPoolShift + i)) < n {
		i++
	}
	return i
}

// unpooled counts the bytes of buffers made past maxPooled since the
// memory releaser last ran: garbage once their requests are done, which
// the releaser gives back (memReleaser).
var unpooled atomic.Int64

func getBuf(n int) *[]byte {
	if n > maxPooled {
		unpooled.Add(int64(n))
		b := make([]byte, n)
		return &b
	}
	i := poolIndex(n)
	if p, ok := pools[i].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(minPoolShift+i))
	return &b
}

func putBuf(p *[]byte) {
	c := cap(*p)
	if c > maxPooled {
		return
	}
	i := poolIndex(c)
	if 1<<(minPoolShift+i) != c {
		return // not one of ours
	}
	pools[i].Put(p)
}
