package targets

import (
	"math/bits"
	"sync"
)

// bufPools recycle the large buffers of targets' I/O paths by power-of-two
// capacity (4 KiB up): a log-writes write waiting for a flush holds a copy
// of its data, a snapshot's origin write reads the chunks it copies out,
// and fresh memory for each (page faults and zeroing included) costs more
// than the I/O it carries. A recycled buffer is not cleared: every caller
// writes each byte it uses before reading it (a log entry's sector by
// AppendEntry, its data by copy; a copy's span by the origin read, its
// tail past the origin's end by clear).
var bufPools [40]sync.Pool

// getBuf is a buffer of n bytes, recycled or new.
func getBuf(n int) []byte {
	c := max(bits.Len(uint(n-1)), 12)
	if v := bufPools[c].Get(); v != nil {
		return (*v.(*[]byte))[:n]
	}
	return make([]byte, n, 1<<c)
}

// putBuf gives b back for reuse; only buffers getBuf made are kept.
func putBuf(b []byte) {
	if c := bits.Len(uint(cap(b) - 1)); cap(b) == 1<<c && c < len(bufPools) {
		bufPools[c].Put(&b)
	}
}
