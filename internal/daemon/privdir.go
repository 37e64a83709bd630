package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// errNotPrivate is a directory that another local user could write, or
// swap for their own: a root daemon must not keep its state, backing files
// or sockets there, or it reads what they planted and writes where they
// point.
var errNotPrivate = errors.New("not a private directory")

// checkPrivateDir makes sure path is a directory that only this process's
// user controls: not a symlink, owned by the effective uid, and not group-
// or other-writable. A missing one is made with mode 0700 (mkdir does not
// follow a symlink at the last component, so a dangling one planted there
// is refused, not followed). Missing parents are made 0700 too.
//
// Only the directory itself is checked, not its parents: the owner of a
// parent can rename it away after the check. Under a sticky directory such
// as /tmp only its owner (or root) can.
func checkPrivateDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	euid := os.Geteuid()
	var reason string
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		reason = "is a symlink"
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		reason = "is not a directory"
	case int(st.Uid) != euid:
		reason = fmt.Sprintf("is owned by uid %d, not by this process's uid %d", st.Uid, euid)
	case st.Mode&0o022 != 0:
		reason = fmt.Sprintf("is group- or other-writable (mode %#o)", st.Mode&0o7777)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s %s; another local user may have made it: remove it or choose another directory", errNotPrivate, path, reason)
}
