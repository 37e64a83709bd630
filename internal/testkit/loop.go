package testkit

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Loop attaches a loop device over file, of logical sectors of
// sectorSize bytes (0: the kernel's default, 512), detaches it when the
// test ends, and returns its path. Without root, losetup or a free loop
// device the test is skipped (failed where tools are required).
func Loop(t testing.TB, file string, sectorSize int) string {
	t.Helper()
	losetup, err := exec.LookPath("losetup")
	if err != nil || os.Getuid() != 0 {
		SkipOrFail(t, "a loop device needs root and losetup: %v", err)
	}
	args := []string{"--find", "--show"}
	if sectorSize != 0 {
		args = append(args, "--sector-size", strconv.Itoa(sectorSize))
	}
	out, err := exec.Command(losetup, append(args, file)...).Output()
	if err != nil {
		SkipOrFail(t, "no loop device available here: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", loop).Run() })
	return loop
}
