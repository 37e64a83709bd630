package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// errSocketPath is a socket path that holds something other than a stale
// socket: a live daemon, a regular file, a symlink, a directory.
var errSocketPath = errors.New("socket path in use")

// listenUnix listens on a UNIX socket at path with the given mode, replacing
// a stale socket but refusing a path a live daemon answers on, or one that
// holds anything but a socket.
//
// The socket never exists at path with a looser mode than asked: it is
// bound in a fresh 0700 directory beside path (which no one else can enter,
// whatever the umask), chmod-ed there, and only then renamed into place. A
// chmod after listening at path itself would leave a window in which, under
// umask 000, any local user could connect and drive a root daemon.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".gdm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	l, err := net.Listen("unix", bound)
	if err != nil {
		return nil, err
	}
	// Closing must not unlink the temp name: the socket lives at path by
	// then, and shutdown removes that.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(bound, mode); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Rename(bound, path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// clearStaleSocket removes a socket at path that no one answers on; it
// refuses a live one, and anything that is not a socket, with the reason.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %s is %s, not a stale socket: refusing to replace it", errSocketPath, path, describeType(fi.Mode()))
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s is in use by a running process", errSocketPath, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// describeType names a file type for an error message.
func describeType(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return fmt.Sprintf("a file of mode %v", m)
}
