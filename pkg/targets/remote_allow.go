package targets

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// With OpenOptions.AllowPrefixes, --allow-path confines every path a
// remote leg names, not only backing files: the UNIX socket an nbd+unix
// URI connects to and the files of its tls-certificates directory. Both
// are checked as backing files are, on what was opened: the real path of
// the descriptor, so that a symlink cannot lead out, and a symlink swapped
// in after a check cannot either, as nothing is looked up by name again.

// allowedUnixDialer dials the socket at path only if its real path is
// allowed, checking again at every redial (a server restarted makes its
// socket anew, maybe elsewhere). It opens the socket's inode with O_PATH
// (which opens nothing else: no FIFO blocks it), checks the descriptor,
// and connects through /proc/self/fd to that very inode. Every nbd+unix
// leg dials this way, with an allow list or without (then nothing is
// refused): a socket path past sun_path's 108 bytes is reachable so too.
func allowedUnixDialer(path string, opts *OpenOptions) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var fd int
		err := retryEINTR(func() (err error) {
			fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
			return err
		})
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		defer unix.Close(fd)
		if err := checkAllowedFd(path, fd, opts); err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, fmt.Errorf("targets: %s is not a socket: %w", path, ErrBadDevice)
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	}
}

// checkAllowedFd applies the allow-list to the real path of fd, opened
// from path.
func checkAllowedFd(path string, fd int, opts *OpenOptions) error {
	if len(opts.AllowPrefixes) == 0 {
		return nil
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		real = ""
	}
	return opts.checkAllowed(path, real)
}
