package targets

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gdm-project/gdm/internal/fileopen"
	"golang.org/x/sys/unix"
)

// DefaultOpenTimeout bounds one open of a backing device when
// OpenOptions.Timeout is zero.
const DefaultOpenTimeout = 10 * time.Second

// maxHungOpens bounds the opens that timed out and still hang in the kernel:
// each holds an OS thread until it returns, and a caller retrying against a
// dead NFS server must not pile up threads without end.
const maxHungOpens = 16

var (
	// ErrOpenTimeout is an open that did not return within its bound (a hung
	// network mount, say). The open goes on in the background and closes
	// what it gets, if it ever returns.
	ErrOpenTimeout = errors.New("open of backing device timed out")
	// ErrIdentityChanged is a path that names another file than the one
	// recorded when the table was loaded (OpenOptions.Expect).
	ErrIdentityChanged = errors.New("backing device identity changed")
	// ErrPathNotAllowed is a path whose real location lies outside
	// OpenOptions.AllowPrefixes.
	ErrPathNotAllowed = errors.New("backing path not allowed")
)

// hungOpens counts the opens abandoned by a timeout that have not returned.
var hungOpens atomic.Int32

// opened is what one bounded open returns: the file, its fstat, the real
// path the descriptor resolved to ("" if /proc could not say), and for a
// block device its claim (blockclaim.go).
type opened struct {
	file  *os.File
	st    unix.Stat_t
	real  string
	claim *blockClaim
}

// close closes the file and gives back its claim.
func (o *opened) close() {
	o.file.Close()
	if o.claim != nil {
		o.claim.release()
	}
}

// openBounded runs openChecked, and claims a block device, within the
// options' timeout. On a timeout it returns at once; the open goes on in a
// goroutine that closes the file if the open ever returns one.
func openBounded(path string, flag int, opts *OpenOptions) (*opened, error) {
	if n := hungOpens.Load(); n >= maxHungOpens {
		return nil, fmt.Errorf("targets: open %s: %d earlier opens still hang: %w", path, n, ErrOpenTimeout)
	}
	type result struct {
		o   *opened
		err error
	}
	ch := make(chan result, 1)
	go func() {
		o, err := openChecked(path, flag, opts.hooks)
		if err == nil && o.st.Mode&unix.S_IFMT == unix.S_IFBLK {
			if o.claim, err = claimBlock(path, int(o.file.Fd()), o.st.Rdev); err != nil {
				o.file.Close()
				o = nil
			}
		}
		ch <- result{o, err}
	}()
	timeout := opts.timeout()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.o, r.err
	case <-timer.C:
	}
	hungOpens.Add(1)
	go func() {
		r := <-ch
		if r.o != nil {
			r.o.close()
		}
		hungOpens.Add(-1)
		if opts.hooks != nil && opts.hooks.abandoned != nil {
			opts.hooks.abandoned()
		}
	}()
	return nil, fmt.Errorf("targets: open %s: no answer in %v (a hung mount?): %w", path, timeout, ErrOpenTimeout)
}

// openChecked opens a regular file or block device without ever opening
// anything else for I/O (internal/fileopen says how), and learns the real
// path the descriptor resolved to.
func openChecked(path string, flag int, h *openHooks) (*opened, error) {
	var fh *fileopen.Hooks
	if h != nil {
		fh = &fileopen.Hooks{Open: h.open, AfterStat: h.afterStat}
	}
	fd, st, err := fileopen.Open(path, flag, fh)
	if err != nil {
		return nil, openError(err)
	}
	o := &opened{st: st}
	if real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		o.real = real
	}
	o.file = os.NewFile(uintptr(fd), path)
	return o, nil
}

// openError words a fileopen error as this package's, ErrBadDevice for
// a path of the wrong type or one replaced while being opened.
func openError(err error) error {
	var wrong *fileopen.WrongTypeError
	var replaced *fileopen.ReplacedError
	switch {
	case errors.As(err, &wrong):
		return fmt.Errorf("targets: %w: %w", wrong, ErrBadDevice)
	case errors.As(err, &replaced):
		return fmt.Errorf("targets: %s was replaced while being opened (%s, was %s): %w",
			replaced.Path, identityOf(&replaced.Found), identityOf(&replaced.Was), ErrBadDevice)
	}
	return fmt.Errorf("targets: %w", err)
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
