package daemon

import (
	"context"
	"math"

	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// The kernel's connections are served by an NBD server of their own,
// reachable only through the daemon's socket pairs (no listener), whose
// catalogue hands out the devices with no size of their own: the kernel
// knows the size from CONNECT and RECONFIGURE, and after a resize grows
// the device it must be able to reach the new end over the connections it
// already has. (A connection of the shared server keeps the size it
// negotiated.) The table still refuses a request past its end.

// attachExports is the attach server's catalogue: the daemon's devices,
// by name, for its own handshakes only.
type attachExports struct{ d *daemon }

var _ nbdserver.Exports = attachExports{}

// unboundedSize is what an attach connection negotiates: the most any
// request can address (the protocol's offsets are signed in the server).
const unboundedSize = math.MaxInt64 &^ 511

func (e attachExports) List() []nbdserver.ExportInfo { return nil }

func (e attachExports) Info(name string) (nbdserver.ExportInfo, bool) {
	info, ok := e.d.Info(name)
	info.Size = unboundedSize
	return info, ok
}

func (e attachExports) Open(name string) (nbdserver.Export, func(), error) {
	exp, release, err := e.d.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return attachExport{exp.(*deviceExport)}, release, nil
}

// attachExport is a device as the kernel's connections see it.
type attachExport struct{ *deviceExport }

var (
	_ nbdserver.SpliceReader = attachExport{}
	_ nbdserver.FUAWriter    = attachExport{}
	_ nbdserver.Syncer       = attachExport{}
	_ nbdserver.AsyncExport  = attachExport{}
	_ nbdserver.SpliceWriter = attachExport{}
	_ nbdserver.PipeWriter   = attachExport{}
)

func (attachExport) Size() int64 { return unboundedSize }

// shutdownAttached lets the kernel's connections finish their requests and
// closes them, before the daemon destroys the tables: the kernel then
// waits (its dead-connection timeout) for the next daemon.
func (d *daemon) shutdownAttached(ctx context.Context) error {
	return d.att.srv.Shutdown(ctx)
}
