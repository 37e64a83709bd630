package targets

import (
	"fmt"
	"io"
	"os"

	"github.com/gdm-project/gdm/internal/fileopen"
	"golang.org/x/sys/unix"
)

// maxTLSFile bounds each certificate or key file read for an nbds URI: a
// chain of a few certificates is some kilobytes.
const maxTLSFile = 1 << 20

// readTLSFile reads a file of tls-certificates=DIR. The directory is the
// table's, so a table's author chooses what the root daemon reads: it is
// opened as backing files are (internal/fileopen: nothing but a regular
// file or block device, without blocking) and read only if it is a
// regular file of at most maxTLSFile bytes. os.ReadFile would wait for ever on a FIFO, and
// read /dev/zero until memory ran out. A missing file is fs.ErrNotExist.
// With an allow-list, the file's real path must be under it, as a backing
// file's must (remote_allow.go): a table's author must not make the daemon
// present a client key it keeps outside.
func readTLSFile(path string, opts *OpenOptions) ([]byte, error) {
	fd, st, err := fileopen.Open(path, unix.O_RDONLY, nil)
	if err != nil {
		return nil, openError(err) // names what it is: a FIFO, a directory...
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := checkAllowedFd(path, fd, opts); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("targets: %s is a block device, not a file: %w", path, ErrBadDevice)
	}
	if st.Size > maxTLSFile {
		return nil, fmt.Errorf("targets: %s has %d bytes, more than a certificate file's %d: %w", path, st.Size, maxTLSFile, ErrBadDevice)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFile+1))
	if err == nil && len(b) > maxTLSFile {
		err = fmt.Errorf("targets: %s grew past %d bytes while read: %w", path, maxTLSFile, ErrBadDevice)
	}
	return b, err
}
