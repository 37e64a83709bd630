package targets

import "context"

// zeroTarget reads zeros and discards writes: `zero`. Its status is
// Base's: no args, no INFO.
type zeroTarget struct{ Base }

// errorTarget fails every I/O with EIO: `error`.
type errorTarget struct{ Base }

var (
	_ Target = zeroTarget{}
	_ Target = errorTarget{}
)

func init() {
	register(&Type{Name: "zero", Version: [3]uint32{1, 1, 0}, Check: noArgs("zero"), New: func([]string, uint64, *DevSet) (Target, error) { return zeroTarget{}, nil },
		Summary: "reads zeros; writes are discarded"})
	register(&Type{Name: "error", Version: [3]uint32{1, 5, 0}, Check: anyArgs, New: func([]string, uint64, *DevSet) (Target, error) { return errorTarget{}, nil },
		Summary: "fails every I/O with EIO (args, if any, are ignored)"})
}

func noArgs(name string) func([]string, uint64) ([]string, error) {
	return func(args []string, _ uint64) ([]string, error) {
		if err := checkArgCount(name, args, 0); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

// anyArgs is the error target's check: dm's error target takes and ignores
// any arguments ("0 8 error foo" loads, and its table reads "0 8 error").
func anyArgs([]string, uint64) ([]string, error) { return nil, nil }

func (zeroTarget) ReadAt(_ context.Context, p []byte, _ int64) error {
	clear(p)
	return nil
}
func (zeroTarget) WriteAt(context.Context, []byte, int64, WriteFlags) error { return nil }
func (zeroTarget) Trim(context.Context, int64, int64) error                 { return nil }
func (zeroTarget) Zero(context.Context, int64, int64, ZeroFlags) error      { return nil }
func (zeroTarget) Extents(_ context.Context, _, n int64, emit func(Extent) bool) error {
	emit(Extent{Length: n, Flags: ExtentHole | ExtentZero})
	return nil
}

func (errorTarget) ReadAt(context.Context, []byte, int64) error { return ErrTargetError }
func (errorTarget) WriteAt(context.Context, []byte, int64, WriteFlags) error {
	return ErrTargetError
}
func (errorTarget) Trim(context.Context, int64, int64) error            { return ErrTargetError }
func (errorTarget) Zero(context.Context, int64, int64, ZeroFlags) error { return ErrTargetError }
func (errorTarget) Extents(context.Context, int64, int64, func(Extent) bool) error {
	return ErrTargetError
}
