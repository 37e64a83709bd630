package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// attachBoot bounds the guest's run: a guard against a hang, not a speed
// bound.
const attachBoot = 10 * time.Minute

// gdm attach, for real: in a TCG guest, gdm serve and the kernel's NBD
// driver (netlink), with ext4 and fio on the attached device; gdm killed
// with SIGKILL in the middle of fio and started again; a grow that reaches
// the kernel and resize2fs; detach and remove (attach-guest.sh).
func TestAttachGuest(t *testing.T) {
	console := bootAttachGuest(t)
	for _, want := range []string{
		"AT-ATTACHED /dev/nbd0", "AT-SIZE 262144", "AT-RO 0", "AT-WRITE-CACHE write back", "AT-FUA 1",
		"AT-BACKEND gdm:", "AT-INFO Attached:          /dev/nbd0 (4 connections", "AT-INFO Open count:        4",
		"AT-LS at\t(262144 sectors, ACTIVE)\t/dev/nbd0", "AT-FILES 4", "AT-KILLED", "AT-RESTARTED",
		"AT-FIO-RC 0", "err= 0:", "AT-RECONNECTED 1", "AT-SUMS-OK", "AT-INFO2 Open count:        4", "AT-GROWN 524288",
		"AT-FSCK-CLEAN", "AT-REMOVE-REFUSED gdm: remove at: device busy", "AT-DETACHED-SIZE 0", "AT-REMOVED", "AT-LBS 4096", "AT-C4K-DONE", "GDM-VM-OK",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the guest did not print %q", want)
		}
	}
	if strings.Contains(console, "AT-DISCARD 0\n") {
		t.Error("no discard on the attached device: TRIM did not reach the kernel")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest lines:\n%s", atLines(console))
	}
}

func atLines(console string) string {
	var b strings.Builder
	for _, line := range strings.Split(console, "\n") {
		if strings.HasPrefix(line, "AT-") || strings.HasPrefix(line, "GDM-VM") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// bootAttachGuest boots the guest with gdm, mke2fs, e2fsck, resize2fs and
// fio, runs attach-guest.sh, and returns the console.
func bootAttachGuest(t *testing.T) string {
	fio := testkit.NeedTool(t, "fio")
	resize := testkit.NeedTool(t, "resize2fs")
	script, err := os.ReadFile("attach-guest.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gdm := buildForGuest(t, dir, "gdm", "../cmd/gdm")
	return bootTCG(t, dir, string(script), tcgGuest{timeout: attachBoot,
		env: []string{"VM_BASE_PROGS=/usr/sbin/mke2fs /usr/sbin/e2fsck " + resize + " " + fio, "VM_PROGS=" + gdm}})
}
