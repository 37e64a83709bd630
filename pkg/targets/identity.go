package targets

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Identity says which file a backing path named when a table was loaded, so
// that a later open of the same path (a daemon restart) can tell whether the
// path still names that file or was replaced meanwhile (by another file, or
// a symlink to a root-only one).
//
// A regular file is its filesystem (Dev) and inode (Ino). A block device is
// its device number (Rdev) alone, with Dev and Ino zero: the node in /dev is
// made again by udev at every boot with a new inode, but names the same disk
// by the same major:minor. The limit of that choice: a dynamically numbered
// device (loop, nbd, dm) detached and replaced by another one under the same
// number is not detected.
//
// The zero Identity is "not known". Two identities are the same file when
// they are equal (==).
type Identity struct {
	Dev  uint64 `json:"dev,omitempty"`
	Ino  uint64 `json:"ino,omitempty"`
	Rdev uint64 `json:"rdev,omitempty"`
	// Remote is an NBD export's canonical URI (remote.go): the export is
	// the same one when its URI is.
	Remote string `json:"remote,omitempty"`
}

// identityOf is the identity of what st describes, or the zero Identity for
// a type that is neither a regular file nor a block device.
func identityOf(st *unix.Stat_t) Identity {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return Identity{Dev: st.Dev, Ino: st.Ino}
	case unix.S_IFBLK:
		return Identity{Rdev: st.Rdev}
	}
	return Identity{}
}

// IsBlock says whether the identity is a block device's.
func (id Identity) IsBlock() bool { return id.Rdev != 0 }

// String is the identity for an error message: "inode 123 on 8:1" or
// "block device 8:16".
func (id Identity) String() string {
	if id.Remote != "" {
		return "NBD export " + id.Remote
	}
	if id.IsBlock() {
		return fmt.Sprintf("block device %d:%d", unix.Major(id.Rdev), unix.Minor(id.Rdev))
	}
	return fmt.Sprintf("inode %d on %d:%d", id.Ino, unix.Major(id.Dev), unix.Minor(id.Dev))
}
