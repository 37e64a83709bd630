package targets

import (
	"context"
	"fmt"
	"strconv"
)

// linear maps the target's range onto one device at an offset:
// `linear <dev> <offset>`.
type linear struct {
	Base
	dev    *Dev
	offset int64 // bytes
}

var _ Target = (*linear)(nil)

func init() {
	register(&Type{Name: "linear", Version: [3]uint32{1, 4, 0}, Check: checkLinear, New: newLinear,
		Syntax:  "<dev> <offset>",
		Summary: "maps the range onto <dev> from sector <offset>"})
}

func checkLinear(args []string, sectors uint64) ([]string, error) {
	if err := checkArgCount("linear", args, 2); err != nil {
		return nil, err
	}
	if args[0] == "" {
		return nil, ErrEmptyPath
	}
	off, err := ParseNumber(args[1])
	if err != nil {
		return nil, fmt.Errorf("offset: %w", err)
	}
	if _, err := sectorsToBytes(off + sectors); err != nil || off+sectors < off {
		return nil, fmt.Errorf("offset+length: %w", ErrOverflow)
	}
	if canonicalNumber(args[1]) {
		return args, nil // already canonical: no new slice or string per line
	}
	return []string{args[0], strconv.FormatUint(off, 10)}, nil
}

// canonicalNumber says whether s is a number as strconv.FormatUint writes
// it (digits, no sign, no leading zero): a million-line table's Check then
// makes no garbage for it.
func canonicalNumber(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func newLinear(args []string, sectors uint64, devs *DevSet) (Target, error) {
	off, _ := ParseNumber(args[1]) // checked by checkLinear
	dev, err := openSized(devs, args[0], off, sectors)
	if err != nil {
		return nil, err
	}
	return &linear{dev: dev, offset: int64(off) * SectorSize}, nil
}

// openSized opens path and checks it holds offset+sectors sectors, and
// notes the area for the table's alignment check (DevSet.TakeAreas).
func openSized(devs *DevSet, path string, offset, sectors uint64) (*Dev, error) {
	dev, err := devs.Open(path)
	if err != nil {
		return nil, err
	}
	need := int64(offset+sectors) * SectorSize
	if dev.Size() < need {
		return nil, fmt.Errorf("%w: %s has %d bytes, needs %d (offset %d + length %d sectors)",
			ErrDeviceTooSmall, path, dev.Size(), need, offset, sectors)
	}
	devs.noteArea(dev, offset, sectors)
	return dev, nil
}

// The I/O methods ignore ctx: pread and pwrite on a local file or block
// device cannot be cancelled.

func (l *linear) ReadAt(_ context.Context, p []byte, off int64) error {
	return l.dev.ReadAt(p, l.offset+off)
}

// WriteAt with FUA syncs the device after the write (fdatasync: the range
// cannot be synced alone, the device's other writes become durable too).
func (l *linear) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	err := l.dev.WriteAt(p, l.offset+off)
	if err == nil && flags&FUA != 0 {
		err = l.dev.Sync()
	}
	return err
}

func (l *linear) Trim(_ context.Context, off, length int64) error {
	return l.dev.Trim(l.offset+off, length)
}

func (l *linear) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	return l.dev.Zero(l.offset+off, length, flags)
}

func (l *linear) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	return l.dev.Extents(l.offset+off, length, emit)
}

// linear's status is Base's: dm's linear target reports nothing in
// STATUSTYPE_INFO, and its args in STATUSTYPE_TABLE.

var _ PipeWriter = (*linear)(nil)

// CanWriteFromPipe says whether the device is local and written through
// the page cache (see PipeWriter and dev_direct.go).
func (l *linear) CanWriteFromPipe() bool { return !l.dev.Remote() && !l.dev.DirectIO() }

// WriteFromPipe writes inPipe bytes from pipe, then tail, at the target's
// offset (see PipeWriter).
func (l *linear) WriteFromPipe(_ context.Context, pipe int, inPipe int64, tail []byte, off int64) error {
	err := l.dev.WriteFromPipe(pipe, inPipe, l.offset+off)
	if err == nil && len(tail) > 0 {
		err = l.dev.WriteAt(tail, l.offset+off+inPipe)
	}
	return err
}
