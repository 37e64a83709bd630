package targets

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// striped spreads the target over legs in chunks, round robin, as
// dm-stripe.c does: `striped <#stripes> <chunk_sectors> (<dev> <offset>)...`.
// Chunk c of the target lives on leg c mod #stripes, at chunk c / #stripes
// of that leg.
type striped struct {
	Base
	legs       []stripeLeg
	chunkBytes int64
	// devOf maps a leg to its device, devErrors counts each device's
	// errors, and event raises the table's event (striped_health.go).
	devOf     []int
	devErrors []atomic.Uint64
	event     func()
}

type stripeLeg struct {
	dev    *Dev
	offset int64 // bytes
	stats  *LegStats
}

// LegStats counts the I/O one leg of a striped target has done. Reads and
// writes count ops and bytes; every op of the leg's that failed, a client's
// FLUSH among them, counts an error (as dm counts them: see
// striped_health.go), and a leg whose device has errors shows as D in the
// status.
type LegStats struct {
	Ops, Bytes, Errors atomic.Uint64
}

// Legged is a target with legs (striped); metrics report per leg.
type Legged interface {
	Legs() []*LegStats
}

var (
	_ Legged       = (*striped)(nil)
	_ Target       = (*striped)(nil)
	_ FlushCounter = (*striped)(nil)
)

// parallelMin is the request size from which the legs of a striped request
// run concurrently; below it a goroutine costs more than it saves.
const parallelMin = 128 << 10

func init() {
	register(&Type{Name: "striped", Version: [3]uint32{1, 6, 0}, Check: checkStriped, New: newStriped,
		Syntax:  "<#stripes> <chunk sectors> <dev> <offset> [<dev> <offset>]...",
		Summary: "spreads the range over the devices in chunks, round-robin"})
}

func checkStriped(args []string, sectors uint64) ([]string, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("%w: striped takes <#stripes> <chunk_sectors> and a <dev> <offset> pair per stripe", ErrArgCount)
	}
	// dm reads both with kstrtouint, which takes one leading '+'.
	stripes, err := kstrtouint(args[0])
	if err != nil {
		return nil, fmt.Errorf("stripes: %w", err)
	}
	if stripes == 0 {
		return nil, ErrStripes
	}
	chunk, err := kstrtouint(args[1])
	if err != nil {
		return nil, fmt.Errorf("chunk size: %w", err)
	}
	if chunk == 0 {
		return nil, ErrChunk
	}
	if stripes > uint64(len(args)) || uint64(len(args)) != 2+2*stripes {
		return nil, fmt.Errorf("%w: striped with %d stripes takes %d, got %d", ErrArgCount, stripes, 2+2*stripes, len(args))
	}
	if sectors%stripes != 0 {
		return nil, fmt.Errorf("%w: length %d, %d stripes", ErrStripeLength, sectors, stripes)
	}
	perLeg := sectors / stripes
	if perLeg%chunk != 0 {
		return nil, fmt.Errorf("%w: %d sectors per stripe, chunk %d", ErrChunkLength, perLeg, chunk)
	}
	if _, err := sectorsToBytes(chunk); err != nil {
		return nil, fmt.Errorf("chunk size: %w", err)
	}
	out := []string{strconv.FormatUint(stripes, 10), strconv.FormatUint(chunk, 10)}
	for i := uint64(0); i < stripes; i++ {
		path, offArg := args[2+2*i], args[3+2*i]
		if path == "" {
			return nil, fmt.Errorf("stripe %d: %w", i, ErrEmptyPath)
		}
		off, err := ParseNumber(offArg)
		if err != nil {
			return nil, fmt.Errorf("stripe %d offset: %w", i, err)
		}
		if _, err := sectorsToBytes(off + perLeg); err != nil || off+perLeg < off {
			return nil, fmt.Errorf("stripe %d offset+length: %w", i, ErrOverflow)
		}
		out = append(out, path, strconv.FormatUint(off, 10))
	}
	return out, nil
}

// kstrtouint reads a number as the kernel's kstrtouint does: decimal,
// one leading '+' allowed, and 32 bits at most (dm-stripe keeps the stripe
// count and the chunk size in uint32_t, and refuses larger ones).
func kstrtouint(s string) (uint64, error) {
	n, err := ParseNumber(strings.TrimPrefix(s, "+"))
	if err == nil && n > math.MaxUint32 {
		err = fmt.Errorf("%w: %q is more than 32 bits", ErrOverflow, s)
	}
	return n, err
}

func newStriped(args []string, sectors uint64, devs *DevSet) (Target, error) {
	stripes, _ := ParseNumber(args[0]) // all checked by checkStriped
	chunk, _ := ParseNumber(args[1])
	s := &striped{chunkBytes: int64(chunk) * SectorSize, legs: make([]stripeLeg, stripes)}
	for i := range s.legs {
		off, _ := ParseNumber(args[3+2*i])
		dev, err := openSized(devs, args[2+2*i], off, sectors/stripes)
		if err != nil {
			return nil, fmt.Errorf("stripe %d: %w", i, err)
		}
		s.legs[i] = stripeLeg{dev: dev, offset: int64(off) * SectorSize, stats: new(LegStats)}
	}
	var n int
	s.devOf, n = stripeDevices(s.legs)
	s.devErrors = make([]atomic.Uint64, n)
	s.event = devs.RaiseEvent
	return s, nil
}

// locate maps a target byte offset to its leg, the byte offset on that leg's
// device, and how many bytes remain in its chunk.
func (s *striped) locate(off int64) (leg int, devOff, inChunk int64) {
	chunk := off / s.chunkBytes
	within := off % s.chunkBytes
	n := int64(len(s.legs))
	leg = int(chunk % n)
	devOff = s.legs[leg].offset + (chunk/n)*s.chunkBytes + within
	return leg, devOff, s.chunkBytes - within
}

// Legs returns each leg's counters, in leg order.
func (s *striped) Legs() []*LegStats {
	out := make([]*LegStats, len(s.legs))
	for i := range s.legs {
		out[i] = s.legs[i].stats
	}
	return out
}

// The I/O methods ignore ctx, as linear's do.

func (s *striped) ReadAt(_ context.Context, p []byte, off int64) error {
	return s.rw(p, off, false)
}

// WriteAt with FUA syncs each leg the write touched, once it is written:
// dm's clones each carry the FUA, so the legs that took their part have it
// durable even when another leg failed.
func (s *striped) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	err := s.rw(p, off, true)
	if flags&FUA != 0 && len(p) > 0 {
		err = cmp.Or(err, s.legRanges(off, int64(len(p)), func(leg int, _, _ int64) error {
			return s.count(leg, s.legs[leg].dev.Sync())
		}))
	}
	return err
}

// rw splits p at chunk boundaries. Pieces go straight to the caller's buffer;
// big requests run one goroutine per leg. Every piece is done whatever
// became of the others, and the first error is returned: dm splits a bio
// at chunk boundaries and submits every clone, so a write's parts on the
// good legs are written, and each failed piece counts against its leg.
func (s *striped) rw(p []byte, off int64, write bool) error {
	if int64(len(p)) >= parallelMin && len(s.legs) > 1 && int64(len(p)) > s.chunkBytes {
		return s.rwParallel(p, off, write)
	}
	var first error
	for len(p) > 0 {
		leg, devOff, room := s.locate(off)
		n := min(room, int64(len(p)))
		first = cmp.Or(first, s.legIO(leg, p[:n], devOff, write))
		p = p[n:]
		off += n
	}
	return first
}

func (s *striped) legIO(leg int, p []byte, devOff int64, write bool) error {
	var err error
	l := &s.legs[leg]
	if write {
		err = l.dev.WriteAt(p, devOff)
	} else {
		err = l.dev.ReadAt(p, devOff)
	}
	l.stats.Ops.Add(1)
	if err == nil {
		l.stats.Bytes.Add(uint64(len(p)))
	}
	return s.count(leg, err)
}

// rwParallel gives each leg its own goroutine, which walks that leg's
// chunks of the request (every #stripes-th chunk) in order, all of them,
// keeping its first error (see rw).
func (s *striped) rwParallel(p []byte, off int64, write bool) error {
	end := off + int64(len(p))
	n := int64(len(s.legs))
	first := off / s.chunkBytes
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := int64(0); i < n && first+i <= (end-1)/s.chunkBytes; i++ {
		wg.Go(func() {
			for c := first + i; c*s.chunkBytes < end; c += n {
				a := max(off, c*s.chunkBytes)
				b := min(end, (c+1)*s.chunkBytes)
				leg, devOff, _ := s.locate(a)
				errs[i] = cmp.Or(errs[i], s.legIO(leg, p[a-off:b-off], devOff, write))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// legRanges calls fn with the one contiguous byte range each leg holds of
// [off, off+length): a leg's chunks within a contiguous target range are
// consecutive on the leg. Every leg is called, whatever the others
// returned, and the first error is returned: dm sends a discard, a
// write-zeroes and a flush to each stripe as a bio of its own.
func (s *striped) legRanges(off, length int64, fn func(leg int, devOff, n int64) error) error {
	var first error
	end := off + length
	n := int64(len(s.legs))
	firstChunk, lastChunk := off/s.chunkBytes, (end-1)/s.chunkBytes
	for leg := int64(0); leg < n; leg++ {
		c1 := firstChunk + ((leg-firstChunk%n)+n)%n
		if c1 > lastChunk {
			continue
		}
		c2 := lastChunk - ((lastChunk%n-leg)+n)%n
		a := max(off, c1*s.chunkBytes)
		_, devA, _ := s.locate(a)
		b := min(end, (c2+1)*s.chunkBytes)
		_, devB, _ := s.locate(b - 1)
		first = cmp.Or(first, fn(int(leg), devA, devB+1-devA))
	}
	return first
}

// Trim fans out to every leg the range touches.
func (s *striped) Trim(_ context.Context, off, length int64) error {
	return s.legRanges(off, length, func(leg int, devOff, n int64) error {
		return s.count(leg, s.legs[leg].dev.Trim(devOff, n))
	})
}

// Zero fans out to every leg the range touches.
func (s *striped) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	return s.legRanges(off, length, func(leg int, devOff, n int64) error {
		return s.count(leg, s.legs[leg].dev.Zero(devOff, n, flags))
	})
}

// Extents walks the range chunk by chunk, asking each leg's device.
func (s *striped) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	end := off + length
	more := true
	for off < end && more {
		leg, devOff, room := s.locate(off)
		n := min(room, end-off)
		err := s.legs[leg].dev.Extents(devOff, n, func(e Extent) bool {
			more = emit(e)
			return more
		})
		if err := s.count(leg, err); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// Status INFO is dm-stripe's: "<#stripes> <dev>... 1 <A|D per leg>", D for
// a leg whose device has seen an I/O error: dm counts an error against
// every stripe on the device that failed, so legs sharing a device turn D
// together. TABLE is Base's.
func (s *striped) Status(typ StatusType) string {
	if typ != StatusInfo {
		return s.Base.Status(typ)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d ", len(s.legs))
	health := make([]byte, len(s.legs))
	for i, l := range s.legs {
		b.WriteString(l.dev.Path())
		b.WriteByte(' ')
		health[i] = 'A'
		if s.legFailed(i) {
			health[i] = 'D'
		}
	}
	fmt.Fprintf(&b, "1 %s", health)
	return b.String()
}
