package daemon

import (
	"context"
	"fmt"
	"sync"

	"github.com/gdm-project/gdm/pkg/nbdserver"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// The daemon is the NBD server's catalogue.
var _ nbdserver.Exports = (*daemon)(nil)

func (d *daemon) info(m *managed) nbdserver.ExportInfo {
	info := nbdserver.ExportInfo{Name: m.name(), Description: "gdm device " + m.name(), ReadOnly: m.dev.ReadOnly(), Size: m.dev.Size()}
	// Byte-granular unless a target needs more (crypt's sector_size):
	// linear and the others serve any range.
	if bs := m.dev.LogicalBlockSize(); bs > targets.SectorSize {
		info.MinBlockSize = uint32(bs)
	}
	// No TRIM where a target takes no discards (crypt without
	// allow_discards) or sends them to a device that takes none, and no
	// WRITE_ZEROES where dm's device would have no write-zeroes (a target
	// other than linear or striped, or a device without them): dm's queue
	// limits, which a kernel client would have seen. The flags are the
	// live table's at the handshake; a reload does not change what a
	// connected client was told (README: discard and write-zeroes).
	info.NoTrim = !m.dev.SupportsDiscard()
	info.NoWriteZeroes = !m.dev.SupportsWriteZeroes()
	return info
}

func (d *daemon) List() []nbdserver.ExportInfo {
	var out []nbdserver.ExportInfo
	for _, m := range d.list() {
		out = append(out, d.info(m))
	}
	return out
}

func (d *daemon) Info(name string) (nbdserver.ExportInfo, bool) {
	m, err := d.get(name)
	if err != nil {
		return nbdserver.ExportInfo{}, false
	}
	return d.info(m), true
}

// Open hands a device to a new NBD connection. It takes mu only for the
// lookup and the connection count (remove checks both under mu).
func (d *daemon) Open(name string) (nbdserver.Export, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.devices[name]
	if !ok || m.gone.Load() {
		return nil, nil, nbdserver.ErrUnknownExport
	}
	if !m.dev.HasLive() {
		return nil, nil, fmt.Errorf("device %s has no live table", name)
	}
	m.conns.Add(1)
	var once sync.Once
	return m.exp, func() { once.Do(func() { m.conns.Add(-1) }) }, nil
}

// deviceExport adapts a table.Device to nbdserver.Export.
type deviceExport struct {
	*table.Device
}

var (
	_ nbdserver.Export       = (*deviceExport)(nil)
	_ nbdserver.SpliceReader = (*deviceExport)(nil)
	_ nbdserver.FUAWriter    = (*deviceExport)(nil)
	// Requests on a remote leg complete on its reply reader (table's
	// device_async.go).
	_ nbdserver.AsyncExport       = (*deviceExport)(nil)
	_ nbdserver.AsyncSpliceReader = (*deviceExport)(nil)
	// Large writes to a remote leg go from the client's socket to the
	// leg's through a pipe (nbdserver's splicewrite.go).
	_ nbdserver.SpliceWriter = (*deviceExport)(nil)
	// ... and to a local file through a pipe into the file.
	_ nbdserver.PipeWriter = (*deviceExport)(nil)
	// Sync (table.Device's): a disconnect's flush reaches no target's
	// FlushRequest, so log-writes logs no FLUSH that no client sent.
	_ nbdserver.Syncer = (*deviceExport)(nil)
)

// WriteAtFUA hands a FUA write to the table's targets, which sync what
// they wrote to, instead of flushing every backing device of the device.
func (e *deviceExport) WriteAtFUA(ctx context.Context, p []byte, off int64) error {
	return e.Device.WriteAtFlags(ctx, p, off, targets.FUA)
}

func (e *deviceExport) Zero(ctx context.Context, off, length int64, noHole, fast bool) error {
	return e.Device.Zero(ctx, off, length, targets.ZeroFlags{NoHole: noHole, Fast: fast})
}

// SpliceRead lets the NBD server send large reads without copying them.
func (e *deviceExport) SpliceRead(ctx context.Context, pipe int, off, length int64) error {
	return noSplice(e.Device.SpliceRead(ctx, pipe, off, length))
}

// SpliceReadAsync lets the NBD server send large reads of a remote leg
// from the leg's socket to its client's without a goroutine waiting.
func (e *deviceExport) SpliceReadAsync(ctx context.Context, pipe int, off, length int64, done func(error)) bool {
	return e.Device.SpliceReadAsync(ctx, pipe, off, length, func(err error) { done(noSplice(err)) })
}

// WriteFromPipe lets the NBD server write large writes to local files
// from the pipe it spliced them into, copied once.
func (e *deviceExport) WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error {
	return noSplice(e.Device.WriteFromPipe(ctx, pipe, inPipe, tail, off))
}

// noSplice says the table's "not done this way" (targets.ErrPipeFull: a
// target that cannot splice the range, or a pipe without room) in the
// server's words (nbdserver.ErrNoSplice), so that it serves the request
// the ordinary way.
func noSplice(err error) error {
	if err == targets.ErrPipeFull {
		return fmt.Errorf("%w: %w", nbdserver.ErrNoSplice, err)
	}
	return err
}

func (e *deviceExport) Extents(ctx context.Context, off, length int64, emit func(int64, uint32) bool) error {
	return e.Device.Extents(ctx, off, length, func(x targets.Extent) bool { return emit(x.Length, x.Flags) })
}
