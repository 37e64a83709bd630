package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// linkDir keeps one symlink per attached device, NAME -> /dev/nbdN, as
// /dev/mapper keeps dm's names: a stable name with no udev needed. Every
// change is made relative to a descriptor of the directory, opened without
// following a symlink, and never follows or replaces anything but a
// symlink into /dev/nbd*: a link planted elsewhere is refused, not obeyed.
type linkDir struct {
	path string // "" keeps no links
}

// defaultLinkDir is where the daemon keeps its links.
const defaultLinkDir = "/dev/gdm"

var errLinkTaken = errors.New("is not a link to an NBD device; not replaced")

// open opens the directory (creating it), refusing a symlink in its place.
func (l linkDir) open() (int, error) {
	if err := os.Mkdir(l.path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return -1, err
	}
	fd, err := unix.Open(l.path, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0)
	if err != nil {
		return -1, fmt.Errorf("%s: %w (a directory is expected, not a symlink)", l.path, err)
	}
	return fd, nil
}

// ours says whether name in the directory is absent (ok) or a symlink to
// an NBD device (ok, replaceable); anything else is not ours.
func ours(dirfd int, name string) error {
	buf := make([]byte, 256)
	n, err := unix.Readlinkat(dirfd, name, buf)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("%s %w", name, errLinkTaken)
	case !strings.HasPrefix(string(buf[:n]), "/dev/nbd"):
		return fmt.Errorf("%s %w", name, errLinkTaken)
	}
	return nil
}

// set points name at target, replacing an older link of ours atomically
// (a temporary link renamed over it). It returns the link's path.
func (l linkDir) set(name, target string) (string, error) {
	if l.path == "" {
		return "", nil
	}
	dirfd, err := l.open()
	if err != nil {
		return "", err
	}
	defer unix.Close(dirfd)
	if err := ours(dirfd, name); err != nil {
		return "", err
	}
	tmp := ".tmp#" + name // '#' is in no device's name (checkName)
	unix.Unlinkat(dirfd, tmp, 0)
	if err := unix.Symlinkat(target, dirfd, tmp); err != nil {
		return "", fmt.Errorf("link %s: %w", name, err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return "", fmt.Errorf("link %s: %w", name, err)
	}
	return filepath.Join(l.path, name), nil
}

// drop removes name if it is still our link to target.
func (l linkDir) drop(name, target string) {
	if l.path == "" {
		return
	}
	dirfd, err := unix.Open(l.path, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0)
	if err != nil {
		return
	}
	defer unix.Close(dirfd)
	buf := make([]byte, 256)
	if n, err := unix.Readlinkat(dirfd, name, buf); err == nil && string(buf[:n]) == target {
		unix.Unlinkat(dirfd, name, 0)
	}
}
