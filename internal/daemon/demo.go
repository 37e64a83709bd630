package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// DemoListen is where the demo serves NBD over TCP. Only the demo
	// listens on TCP by default: any local user can reach a TCP listener,
	// and the demo's device is the demo's own sparse files.
	DemoListen = "127.0.0.1:10809"
	demoName   = "demo"
	demoLegs   = 4
	demoSize   = 1 << 30
	demoChunk  = 128 // sectors: 64 KiB
)

// errDemoLeg is a demo backing file that is not one the daemon made: the
// demo must never extend or serve a file someone else put in its place.
var errDemoLeg = errors.New("not a demo backing file")

// ensureDemo creates the demo device, 1 GiB striped over four sparse files
// under the state dir, unless the state already has it. The directory must
// be private (checkPrivateDir) and each leg a regular file this user owns,
// reached without following a symlink.
func (d *daemon) ensureDemo(stateDir string) error {
	if _, err := d.get(demoName); err == nil {
		return nil
	}
	dir := filepath.Join(stateDir, "demo")
	if err := checkPrivateDir(dir); err != nil {
		return err
	}
	var legs []string
	for i := range demoLegs {
		p := filepath.Join(dir, fmt.Sprintf("leg%d.img", i))
		if err := makeDemoLeg(p); err != nil {
			return err
		}
		legs = append(legs, p+" 0")
	}
	text := fmt.Sprintf("0 %d striped %d %d %s\n", demoSize/512, demoLegs, demoChunk, strings.Join(legs, " "))
	_, err := d.create(demoName, text, "", false)
	return err
}

// makeDemoLeg creates (or reuses) one sparse leg file of the demo's size.
// O_NOFOLLOW refuses a symlink; the fstat refuses anything but a regular
// file owned by this user with one link (a hard link to someone's file is
// not ours to grow). O_RDWR does not block on a FIFO, and the fstat refuses
// it.
func makeDemoLeg(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%w: %s is a symlink", errDemoLeg, p)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%w: %s is not a regular file (mode %#o)", errDemoLeg, p, st.Mode)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%w: %s is owned by uid %d, not %d", errDemoLeg, p, st.Uid, os.Geteuid())
	case st.Nlink != 1:
		return fmt.Errorf("%w: %s has %d hard links", errDemoLeg, p, st.Nlink)
	}
	if st.Size < demoSize/demoLegs {
		return f.Truncate(demoSize / demoLegs)
	}
	return nil
}
