package targets

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// OpenOptions restrict and bound how a DevSet opens backing devices. A root
// daemon opens paths that less privileged users wrote into tables; these are
// what keeps it from lending them root, or hanging on their behalf.
type OpenOptions struct {
	// Timeout bounds one open (stat, open and fstat); zero means
	// DefaultOpenTimeout.
	Timeout time.Duration
	// Expect maps a path, as written in the table, to the identity it had
	// when the table was loaded. A path in the map that now names another
	// file is refused with ErrIdentityChanged; paths not in it are opened
	// as found. The map is read, never written, by every table built with
	// these options; the caller must not change it meanwhile.
	Expect map[string]Identity
	// AllowPrefixes, when not empty, are the directories (absolute, with no
	// symlinks in them) under which backing devices may lie. What is checked
	// is the real path of the opened descriptor, so a symlink out of an
	// allowed directory is refused; the match is by whole path components,
	// so /srv/data does not allow /srv/database.
	AllowPrefixes []string
	// BlockPageCache serves block devices through the page cache, as gdm
	// did before it used O_DIRECT for them (dev_direct.go): faster
	// repeated reads, at the cost of answers that are the cache's, not
	// the device's.
	BlockPageCache bool
	// FileDirect reads and writes regular files with O_DIRECT, and whole
	// blocks of them through Linux AIO, as block devices are (qemu's
	// cache=none; dev_file_direct.go). A file whose filesystem refuses
	// O_DIRECT is served through the page cache.
	FileDirect bool

	hooks *openHooks // tests only
	// onChange is given to every remote device's client (DevSet sets it
	// to its RaiseEvent).
	onChange func()
}

// openHooks let in-package tests stand in for the system at the points where
// a race or a hang would happen.
type openHooks struct {
	open      func(path string, flag int, mode uint32) (int, error) // replaces unix.Open
	afterStat func()                                                // between stat and open
	abandoned func()                                                // after a timed-out open returned and was closed
}

func (o *OpenOptions) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultOpenTimeout
}

// expected looks the path up in Expect as written, then cleaned.
func (o *OpenOptions) expected(path string) (Identity, bool) {
	if id, ok := o.Expect[path]; ok {
		return id, true
	}
	id, ok := o.Expect[filepath.Clean(path)]
	return id, ok
}

// checkAllowed refuses a real path outside AllowPrefixes.
func (o *OpenOptions) checkAllowed(path, real string) error {
	if len(o.AllowPrefixes) == 0 {
		return nil
	}
	if real == "" {
		return fmt.Errorf("targets: %s: its real path is unknown, so it cannot be checked against the allowed prefixes: %w", path, ErrPathNotAllowed)
	}
	for _, p := range o.AllowPrefixes {
		if underPrefix(real, p) {
			return nil
		}
	}
	return fmt.Errorf("targets: %s (really %s) is not under an allowed prefix (%s): %w",
		path, real, strings.Join(o.AllowPrefixes, ", "), ErrPathNotAllowed)
}

// underPrefix says whether real lies in the directory prefix, comparing
// whole path components.
func underPrefix(real, prefix string) bool {
	prefix = filepath.Clean(prefix)
	if !filepath.IsAbs(prefix) {
		return false
	}
	if prefix == "/" {
		return true
	}
	return real == prefix || strings.HasPrefix(real, prefix+"/")
}

// checkIdentity refuses a device that is not the one Expect recorded.
func (o *OpenOptions) checkIdentity(path string, found Identity) error {
	want, ok := o.expected(path)
	if !ok || want == found {
		return nil
	}
	what := "file"
	if found.IsBlock() {
		what = "device"
	}
	return fmt.Errorf("targets: %s is now a different %s (%s, was %s): it was replaced since the table was loaded; load the table again to accept it: %w",
		path, what, found, want, ErrIdentityChanged)
}
