package nbdclient

// Which bytes of a read the server has described: a server that does not
// fragment (DF) sends one content chunk, but one without DF may split a
// read into OFFSET_DATA and OFFSET_HOLE chunks in any order, which the
// spec forbids to overlap. Counting the bytes the chunks claim is not
// enough: two chunks for the same range would add up to the read's length
// while leaving the rest of the caller's buffer unwritten, and the read
// would succeed with whatever the buffer held before. So each chunk's
// range is checked against those before it.

// span is a range [off, end) of a read's buffer that chunks covered.
type span struct{ off, end int64 }

// maxReadSpans bounds the disjoint ranges remembered for one read (16
// bytes each). Adjacent ranges merge, so a server sending its chunks in
// order, forwards or backwards, needs one whatever their number; only one
// scattering them over more than this many gaps is refused.
const maxReadSpans = 1024

// claim records that a chunk covered [off, off+n) of cl's read, n > 0.
// It fails on a range that overlaps one claimed before, or when the
// ranges left apart would be too many. Kept sorted and merged, in
// cl.spanBuf until that is full: the usual read (one chunk, or a few in
// order) costs no allocation and no search.
func (cl *call) claim(off, n int64) error {
	end := off + n
	s := cl.spans
	if s == nil {
		s = cl.spanBuf[:0]
	}
	// i: the first range that ends after off; those before it end at or
	// before off, those after it begin after s[i] does.
	lo, hi := 0, len(s)
	for lo < hi {
		if m := int(uint(lo+hi) >> 1); s[m].end > off {
			hi = m
		} else {
			lo = m + 1
		}
	}
	i := lo
	if i < len(s) && s[i].off < end {
		return protoErr("read chunk [%d,+%d) overlaps [%d,%d)", off, n, s[i].off, s[i].end)
	}
	left := i > 0 && s[i-1].end == off
	right := i < len(s) && s[i].off == end
	switch {
	case left && right:
		s[i-1].end = s[i].end
		s = append(s[:i], s[i+1:]...)
	case left:
		s[i-1].end = end
	case right:
		s[i].off = off
	case len(s) == maxReadSpans:
		return protoErr("read reply in more than %d pieces", maxReadSpans)
	default:
		s = append(s, span{})
		copy(s[i+1:], s[i:])
		s[i] = span{off, end}
	}
	cl.spans = s
	return nil
}
