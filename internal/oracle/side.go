package oracle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Side is one implementation under comparison: the kernel's dm (dmsetup
// over virtio disks) or gdm (its own daemon, reached through the kernel's
// nbd client). Both run in the same guest, so that one program drives both
// through the same block-layer calls and compares as it goes, with both
// sides' bytes at hand when they differ.
type Side interface {
	Name() string
	// Disks are the backing devices $0, $1, ... of this side's tables.
	Disks() []string
	// DevNames maps every way this side prints a backing device (path,
	// major:minor) to its index in Disks.
	DevNames() map[string]int
	// Create makes a device with a table whose $N are already bound.
	Create(name, table string) error
	// Attach returns the block device to do I/O on; Detach lets it go.
	Attach(name string, n int) (string, error)
	// Stack returns the name this side's tables give device name by, to
	// map it as a backing device (an under device, under.go), attaching
	// it at nbd index n where it needs to; Detach and Remove let it go,
	// as any device.
	Stack(name string, n int) (string, error)
	Detach(name string) error
	Remove(name string) error
	// Table and Status print as `dmsetup table` and `dmsetup status` do.
	Table(name string) (string, error)
	Status(name string) (string, error)
	// TableKeys prints the table with crypt keys shown (dmsetup table
	// --showkeys); ok is false when this side cannot (a gdm without
	// --showkeys prints its keys in Table).
	TableKeys(name string) (text string, ok bool, err error)
	// Message sends a message to the target at sector 0 (dmsetup message).
	Message(name string, words []string) error
	Suspend(name string) error
	Resume(name string) error
	Reload(name, table string) error
}

// cmdTimeout bounds every command a side runs: a hung dmsetup or gdm
// fails the case instead of the run.
const cmdTimeout = 60 * time.Second

// run runs a command with stdin and returns its stdout, or an error with
// its stderr.
func run(stdin string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// DM is the kernel's device-mapper, driven by dmsetup without udev.
type DM struct {
	name   string
	prefix string // of its device names, so that two DMs can share a kernel
	disks  []string
	names  map[string]int
}

// NewDM uses disks as $0, $1, ...; it learns their major:minor, which is
// how dmsetup prints them.
func NewDM(disks []string) (*DM, error) {
	names, err := devNames(disks)
	return &DM{name: "dm", disks: disks, names: names}, err
}

// Named gives this side another name in reports: a run that puts dm on
// both sides (to check that the cases are deterministic on the kernel
// itself) tells them apart.
func (d *DM) Named(name string) *DM {
	d.name, d.prefix = name, name+"-"
	return d
}

var dmEnv = []string{"DM_DISABLE_UDEV=1"}

func (d *DM) Name() string             { return d.name }
func (d *DM) Disks() []string          { return d.disks }
func (d *DM) DevNames() map[string]int { return d.names }

func (d *DM) dmsetup(stdin string, args ...string) (string, error) {
	return run(stdin, dmEnv, "dmsetup", args...)
}

// Create is `dmsetup create`, which loads and resumes. A table the kernel
// refuses at resume (a device too small) can leave an empty device behind:
// it is removed, so that a refusal leaves nothing, as it does in gdm.
func (d *DM) Create(name, table string) error {
	_, err := d.dmsetup(table, "create", d.prefix+name)
	if err != nil {
		d.dmsetup("", "remove", d.prefix+name)
	}
	return err
}

func (d *DM) Attach(name string, _ int) (string, error) { return "/dev/mapper/" + d.prefix + name, nil }
func (d *DM) Detach(string) error                       { return nil }

// Stack is the device's node, as for I/O: dm stacks on a dm device
// itself.
func (d *DM) Stack(name string, _ int) (string, error) { return d.Attach(name, 0) }
func (d *DM) Remove(name string) error                 { return d.do("remove", name) }
func (d *DM) Table(name string) (string, error)        { return d.dmsetup("", "table", d.prefix+name) }
func (d *DM) Status(name string) (string, error)       { return d.dmsetup("", "status", d.prefix+name) }
func (d *DM) Suspend(name string) error                { return d.do("suspend", name) }
func (d *DM) TableKeys(name string) (string, bool, error) {
	out, err := d.dmsetup("", "table", "--showkeys", d.prefix+name)
	return out, true, err
}
func (d *DM) Message(name string, words []string) error {
	_, err := d.dmsetup("", append([]string{"message", d.prefix + name, "0"}, words...)...)
	return err
}
func (d *DM) Resume(name string) error { return d.do("resume", name) }
func (d *DM) Reload(name, table string) error {
	_, err := d.dmsetup(table, "reload", d.prefix+name)
	return err
}

// do runs a dmsetup command on a device whose output is not wanted.
func (d *DM) do(cmd, name string) error {
	_, err := d.dmsetup("", cmd, d.prefix+name)
	return err
}

// devNames maps each disk's path and major:minor to its index.
func devNames(disks []string) (map[string]int, error) {
	names := map[string]int{}
	for i, p := range disks {
		names[p] = i
		mm, err := majorMinor(p)
		if err != nil {
			return nil, err
		}
		names[mm] = i
	}
	return names, nil
}
