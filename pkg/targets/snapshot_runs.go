package targets

// Runs: a request over many chunks is served with as few device I/Os as
// the mapping allows. Consecutive chunks whose exceptions sit at
// consecutive COW chunks are one stretch of the COW device, and
// consecutive chunks without exceptions one stretch of the origin, so each
// is one ReadAt or WriteAt rather than one per chunk: a 1 MiB request over
// 4 KiB chunks would otherwise cost 256 system calls.

// chunkRun is a stretch of a request over consecutive chunks that one
// device I/O serves: all mapped, to consecutive COW chunks from nw on, or
// all unmapped.
type chunkRun struct {
	chunk  uint64 // the first chunk
	n      int    // chunks in the run
	in     int64  // offset of the run inside the first chunk
	size   int64  // bytes in the run
	p      []byte // the request's part, for ReadAt and WriteAt
	mapped bool
	nw     uint64 // the first chunk's COW chunk, if mapped
}

// eachRun calls f for each run of [off, off+len(p)), as the store maps it
// now; a caller that needs the mapping to hold holds the range.
func eachRun(st *cowStore, p []byte, off int64, f func(chunkRun) error) error {
	for len(p) > 0 {
		r := st.nextRun(off, int64(len(p)))
		r.p = p[:r.size]
		if err := f(r); err != nil {
			return err
		}
		p, off = p[len(r.p):], off+int64(len(r.p))
	}
	return nil
}

// nextRun is the run at the start of [off, off+length), looked up under
// one read lock: taken per chunk, the lock would cost more than the map.
func (s *cowStore) nextRun(off, length int64) chunkRun {
	cs := s.lay.chunk
	s.mu.RLock()
	defer s.mu.RUnlock()
	first := uint64(off / cs)
	nw, ok := s.table[first]
	r := chunkRun{chunk: first, n: 1, in: off % cs, mapped: ok, nw: nw}
	end := min(length, cs-r.in)
	for end < length {
		nw, ok := s.table[first+uint64(r.n)]
		if ok != r.mapped || (ok && nw != r.nw+uint64(r.n)) {
			break
		}
		r.n++
		end = min(length, end+cs)
	}
	r.size = end
	return r
}

// newRunLen is how many pairs from the first on have COW chunks end to
// end.
func newRunLen(pairs []snapPair) int {
	n := 1
	for n < len(pairs) && pairs[n].new == pairs[0].new+uint64(n) {
		n++
	}
	return n
}

// maxCopyBytes bounds the buffer of one copy: pairs whose origin chunks
// span more than this are read in parts.
const maxCopyBytes = 4 << 20

// maxCopyGap is the most of the origin between two chunks to copy that a
// copy reads and drops rather than make a second read: about what one
// more system call costs in copying, on any machine (a read from the page
// cache moves some GiB/s; the call costs a microsecond or two).
const maxCopyGap = 16 << 10

// spanLen is how many pairs from the first on copyChunks reads with one
// read: origin chunks no more than maxCopyGap apart, within maxCopyBytes.
func spanLen(pairs []snapPair, cs int64) int {
	n := 1
	for n < len(pairs) {
		gap := int64(pairs[n].old-pairs[n-1].old-1) * cs
		if gap > maxCopyGap || int64(pairs[n].old-pairs[0].old+1)*cs > maxCopyBytes {
			break
		}
		n++
	}
	return n
}

// copyChunks copies the origin chunks of pairs (ascending origin chunks)
// to their COW chunks. Origin chunks close together are one read, with
// the chunks between them read and dropped (an origin write over chunks
// that earlier 4 KiB writes left copied here and there has such gaps
// every few chunks), and their COW chunks are written gathered
// (snapshot_gather.go): one call when they lie end to end, as those of
// one origin write do. A chunk that runs past the origin's end is padded
// with zeros.
func copyChunks(src *Dev, st *cowStore, pairs []snapPair) error {
	cs := st.lay.chunk
	var buf []byte
	defer func() { putBuf(buf) }()
	var ios []cowIO
	for len(pairs) > 0 {
		first := pairs[0].old
		n := spanLen(pairs, cs)
		span := pairs[:n]
		pairs = pairs[n:]
		size := int64(span[n-1].old-first+1) * cs
		if int64(cap(buf)) < size {
			putBuf(buf)
			buf = getBuf(int(size))
		}
		b := buf[:size]
		at := int64(first) * cs
		k := min(size, max(src.Size()-at, 0))
		if err := src.ReadAt(b[:k], at); err != nil {
			return err
		}
		clear(b[k:])
		ios = ios[:0]
		for _, p := range span {
			from := int64(p.old-first) * cs
			ios = append(ios, cowIO{at: int64(p.new) * cs, p: b[from : from+cs]})
		}
		if err := gathered(st.dev, ios, true); err != nil {
			return err
		}
	}
	return nil
}

// filledNew adds to whole (made when nil) the COW chunks of pairs, the new
// exceptions of r's first chunks, that r writes whole.
func filledNew(whole map[uint64]bool, r chunkRun, pairs []snapPair, cs int64) map[uint64]bool {
	for k, p := range pairs {
		if int64(k)*cs < r.in || int64(k+1)*cs > r.in+int64(len(r.p)) {
			continue
		}
		if whole == nil {
			whole = map[uint64]bool{}
		}
		whole[p.new] = true
	}
	return whole
}

// failsWhole writes again, chunk by chunk, the pieces of ios (a gathered
// write that failed somewhere) that fill a COW chunk of whole, and reports
// whether one fails; it stops there. The rest is not tried again: only
// such a failure decides anything (see WriteAt), and each try of a device
// that has gone away may take its timeout.
func failsWhole(d *Dev, cs int64, ios []cowIO, whole map[uint64]bool) bool {
	if len(whole) == 0 {
		return false
	}
	for _, io := range ios {
		err := eachPiece(cs, io.p, io.at, func(c chunkPiece) error {
			if !whole[c.chunk] {
				return nil
			}
			return d.WriteAt(c.p, int64(c.chunk)*cs+c.in)
		})
		if err != nil {
			return true
		}
	}
	return false
}
