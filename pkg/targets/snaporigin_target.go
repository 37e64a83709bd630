package targets

import (
	"context"
	"fmt"
)

// snapOrigin is dm's snapshot-origin target: `snapshot-origin <origin>`.
// It maps the origin device one to one; its writes first give the old
// data to every active snapshot of that origin, in whatever table of the
// daemon they are (snaporigin.go). Reads go straight to the device.
type snapOrigin struct {
	Base
	dev   *Dev
	entry *originEntry
}

var (
	_ Target    = (*snapOrigin)(nil)
	_ Destroyer = (*snapOrigin)(nil)
	_ Discarder = (*snapOrigin)(nil)
)

func init() {
	register(&Type{Name: "snapshot-origin", Version: [3]uint32{1, 9, 0}, Check: checkSnapOrigin, New: newSnapOrigin,
		Syntax:  "<origin>",
		Summary: "maps <origin> one to one; a write first copies the chunks it changes to every active snapshot of <origin>"})
}

func checkSnapOrigin(args []string, _ uint64) ([]string, error) {
	if err := checkArgCount("snapshot-origin", args, 1); err != nil {
		return nil, err
	}
	if args[0] == "" {
		return nil, ErrEmptyPath
	}
	return []string{args[0]}, nil
}

func newSnapOrigin(args []string, sectors uint64, devs *DevSet) (Target, error) {
	dev, err := openSized(devs, args[0], 0, sectors)
	if err != nil {
		return nil, err
	}
	if dev.Identity() == (Identity{}) {
		return nil, fmt.Errorf("targets: snapshot-origin %s: identity unknown: %w", args[0], ErrBadDevice)
	}
	return &snapOrigin{dev: dev, entry: acquireOrigin(dev.Identity())}, nil
}

// Destroy leaves the origin's entry.
func (o *snapOrigin) Destroy() error {
	o.entry.release()
	return nil
}

func (o *snapOrigin) ReadAt(_ context.Context, p []byte, off int64) error {
	return o.dev.ReadAt(p, off)
}

// WriteAt copies the old chunks out, then writes; with FUA the origin is
// synced after (the copies' commits were synced before).
func (o *snapOrigin) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	return o.entry.write(o.dev, off, int64(len(p)), func() error {
		if err := o.dev.WriteAt(p, off); err != nil {
			return err
		}
		if flags&FUA != 0 {
			return o.dev.Sync()
		}
		return nil
	})
}

// SupportsDiscard is false: dm's snapshot-origin sets up no discard bios,
// so an origin device has no discard support (EOPNOTSUPP), and gdm's
// export offers no TRIM. The oracle found gdm discarding there (after
// copying the chunk out to each snapshot).
func (o *snapOrigin) SupportsDiscard() bool { return false }

// Trim changes what the range reads, so the snapshots get their copies
// first, as for a write. Not reached through NBD (see SupportsDiscard).
func (o *snapOrigin) Trim(_ context.Context, off, length int64) error {
	return o.entry.write(o.dev, off, length, func() error { return o.dev.Trim(off, length) })
}

func (o *snapOrigin) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	return o.entry.write(o.dev, off, length, func() error { return o.dev.Zero(off, length, flags) })
}

func (o *snapOrigin) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	return o.dev.Extents(off, length, emit)
}

func (o *snapOrigin) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	return o.dev.SpliceTo(pipe, off, n)
}
