// Package targets holds gdm's dm targets (linear, striped, zero, error) and
// the backing devices they map onto.
//
// A Target serves byte ranges relative to its own start; the table in
// pkg/table splits a request at target boundaries and hands each piece to the
// right target. Targets never open or close backing devices themselves: they
// borrow them from the table's DevSet, which opens each path once and closes
// everything exactly once when the table is destroyed.
package targets

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// SectorSize is the unit of dm tables.
const SectorSize = 512

// Errors a table line can be refused with. Test with errors.Is.
var (
	ErrUnknownType    = errors.New("unknown target type")
	ErrArgCount       = errors.New("wrong number of arguments")
	ErrNotNumber      = errors.New("not a number")
	ErrNegative       = errors.New("negative number")
	ErrOverflow       = errors.New("number too large")
	ErrDeviceTooSmall = errors.New("backing device too small")
	ErrBadDevice      = errors.New("not a regular file or block device")
	ErrStripes        = errors.New("number of stripes must be positive")
	ErrChunk          = errors.New("chunk size must be positive")
	ErrStripeLength   = errors.New("length not divisible by number of stripes")
	ErrChunkLength    = errors.New("stripe length not divisible by chunk size")
	ErrEmptyPath      = errors.New("empty device path")
)

// Errors of mapped I/O. They wrap errnos so that one function (in the NBD
// layer) can map them to NBD error codes with errors.Is.
var (
	// ErrTargetError is what the error target answers every I/O with.
	ErrTargetError = fmt.Errorf("targets: error target: %w", syscall.EIO)
	// ErrNotSupported answers a zero request that asked to be fast when only
	// the slow way (writing zeros) would do.
	ErrNotSupported = fmt.Errorf("targets: fast zero not supported: %w", syscall.ENOTSUP)
	// ErrShortIO is a backing device that ended before the data did (it was
	// truncated after the table was loaded).
	ErrShortIO = fmt.Errorf("targets: short I/O on backing device: %w", syscall.EIO)
)

// ZeroFlags qualify a write-zeroes request.
type ZeroFlags struct {
	// NoHole: the zeroed range must stay allocated (NBD_CMD_FLAG_NO_HOLE).
	NoHole bool
	// Fast: fail with ErrNotSupported rather than write zeros by hand
	// (NBD_CMD_FLAG_FAST_ZERO).
	Fast bool
}

// Extent flags, the same bits as NBD's base:allocation context.
const (
	ExtentHole uint32 = 1 << 0 // unallocated
	ExtentZero uint32 = 1 << 1 // reads as zeros
)

// Extent is one run of a block-status answer.
type Extent struct {
	Length int64
	Flags  uint32
}

// Target is one table line's mapping. Offsets are bytes from the target's
// start; callers keep every range inside the target. Implementations must be
// safe for concurrent use: many I/Os run on one target at once.
type Target interface {
	ReadAt(p []byte, off int64) error
	WriteAt(p []byte, off int64) error
	// Trim discards a range; its content is undefined afterwards.
	Trim(off, length int64) error
	// Zero makes a range read as zeros.
	Zero(off, length int64, flags ZeroFlags) error
	// Extents reports allocation of [off, off+length) in order, calling emit
	// for each run until it returns false. Runs may be reported shorter than
	// they are; the sum covers at most the range.
	Extents(off, length int64, emit func(Extent) bool) error
	// SpliceTo writes exactly n bytes of [off, off+n) to pipe (a pipe's
	// write end, non-blocking) without copying them through user space
	// where it can (see splice.go), or fails: with ErrPipeFull when the
	// pipe has no room left. After a failure the pipe holds an unknown part
	// of the range and must be discarded.
	SpliceTo(pipe int, off, n int64) error
	// Status is dm's STATUSTYPE_INFO text for this target.
	Status() string
}

// Type is a kind of target: how to check its arguments and how to build one.
type Type struct {
	Name string
	// Check validates args for a target of the given length (sectors)
	// without touching any device, and returns them in canonical form.
	Check func(args []string, sectors uint64) ([]string, error)
	// New builds a target from canonical args, opening devices via devs.
	New func(args []string, sectors uint64, devs *DevSet) (Target, error)
}

var types = map[string]*Type{}

func register(t *Type) { types[t.Name] = t }

// Lookup finds a target type by its table name.
func Lookup(name string) (*Type, error) {
	t, ok := types[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, name)
	}
	return t, nil
}

// TypeNames lists the registered target types, sorted.
func TypeNames() []string {
	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseNumber parses a non-negative decimal number of a table, saying which
// of not-a-number, negative or too-large it is when it is none.
func ParseNumber(s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %q", ErrNegative, s)
		}
		return 0, fmt.Errorf("%w: %q", ErrNotNumber, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%w: %q", ErrOverflow, s)
	}
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q", ErrNotNumber, s)
	}
	return n, nil
}

// sectorsToBytes converts a sector count, refusing counts whose byte size
// does not fit an int64 (no device is that big).
func sectorsToBytes(s uint64) (int64, error) {
	if s > (1<<63-1)/SectorSize {
		return 0, fmt.Errorf("%w: %d sectors", ErrOverflow, s)
	}
	return int64(s) * SectorSize, nil
}

func checkArgCount(name string, args []string, want int) error {
	if len(args) != want {
		return fmt.Errorf("%w: %s takes %d, got %d", ErrArgCount, name, want, len(args))
	}
	return nil
}
