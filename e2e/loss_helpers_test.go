package e2e

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// gdmGuestBoot bounds one boot of bootGdmGuest: a guard against a hang,
// not a speed bound (the power-loss script takes about a minute here).
const gdmGuestBoot = 6 * time.Minute

// bootGdmGuest boots a TCG guest whose initramfs has a static gdm beside
// nbd-client, mke2fs and e2fsck, runs script there with sh -e, and returns
// the console. The guest must reach GDM-VM-OK. Unlike bootGuest, gdm runs
// inside the guest: the script can reload tables between its own writes.
func bootGdmGuest(t *testing.T, script string) string {
	t.Helper()
	testkit.NeedTool(t, "nbd-client")
	dir := t.TempDir()
	gdm := buildForGuest(t, dir, "gdm", "../cmd/gdm")
	return bootTCG(t, dir, script, tcgGuest{timeout: gdmGuestBoot,
		env: []string{"VM_BASE_PROGS=/usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck", "VM_PROGS=" + gdm}})
}
