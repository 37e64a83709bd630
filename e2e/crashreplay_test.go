package e2e

import (
	_ "embed"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// crashGuest is the script the guest runs; its comments say what each part
// does and which CRASH-* markers it prints.
//
//go:embed crashreplay-guest.sh
var crashGuest string

// crashBoot bounds the guest run: a guard against a hang, not a speed
// bound (about a minute and a half under TCG on a quiet host).
const crashBoot = 8 * time.Minute

// minExt4Checks is the fewest FUA check points the ext4 workload must
// give: each fsync of the workload ends in a journal commit, a FUA write,
// so a run with fewer checked nothing that matters.
const minExt4Checks = 20

// The crash-consistency workflow of the README, as a user runs it: in one
// guest, ext4 through the kernel's nbd-client on a gdm log-writes device,
// a workload with fsyncs, and gdm replay checking e2fsck at every FUA
// write (each an ext4 journal commit) after the mkfs. Then a toy "file
// system" whose commit record can reach the disk before the data it
// covers: replay checking at each FUA must stop (exit 1) at that commit,
// the first bad point, while the same writes in the right order, with a
// flush between data and commit, pass the same check.
func TestCrashReplay(t *testing.T) {
	console := bootCrashGuest(t)
	m := regexp.MustCompile(`CRASH-LOG entries=(\d+) fua=(\d+)`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no CRASH-LOG line:\n%s", console)
	}
	for _, line := range strings.Split(console, "\n") {
		if strings.HasPrefix(line, "CRASH-") && !strings.HasPrefix(line, "CRASH-CHECK") && !strings.HasPrefix(line, "CRASH-RECOVERED") {
			t.Log(line)
		}
	}
	checks := strings.Count(console, "CRASH-CHECK ")
	recovered := strings.Count(console, "CRASH-RECOVERED ")
	t.Logf("ext4 log: %s entries, %s FUA; e2fsck ran at %d crash points, %d of them with a journal to recover",
		m[1], m[2], checks, recovered)
	if fua, _ := strconv.Atoi(m[2]); checks < minExt4Checks || checks != fua {
		t.Errorf("e2fsck ran at %d points, want one per FUA entry (%d) and at least %d:\n%s", checks, fua, minExt4Checks, console)
	}
	if recovered < minExt4Checks/2 {
		t.Errorf("only %d crash points had a journal to recover: the recovery check was barely exercised", recovered)
	}
	markersInOrder(t, console, "CRASH-MKFS-OK", "CRASH-EXT4-OK",
		"CRASH-POINT-OK", "CRASH-POINT-OK", "CRASH-POINT-OK", "CRASH-GOOD-OK",
		"CRASH-POINT-OK", "CRASH-BAD commit 2 without its data at entry ", "CRASH-BAD-EXIT 1\n", "CRASH-BAD-STOPPED")
	good := console[strings.Index(console, "CRASH-EXT4-OK"):strings.Index(console, "CRASH-GOOD-OK")]
	bad := console[strings.Index(console, "CRASH-GOOD-OK"):]
	if n := strings.Count(good, "CRASH-POINT-OK"); n != 3 {
		t.Errorf("the right-order writes were checked at %d FUA points, want 3:\n%s", n, good)
	}
	if n := strings.Count(bad, "CRASH-POINT-OK"); n != 1 || strings.Contains(bad, "CRASH-BAD commit 1") {
		t.Errorf("the broken writes' replay did not stop at transaction 2's commit:\n%s", bad)
	}
	// The first bad point is the commit's own entry: the one that dump
	// lists as the FUA write to block 2 (sector 16).
	at := regexp.MustCompile(`CRASH-BAD commit 2 without its data at entry (\d+)`).FindStringSubmatch(bad)
	if at == nil || !strings.Contains(bad, "CRASH-DUMP-bad "+at[1]+": sector 16, 8 sectors, flags FUA") {
		t.Errorf("the replay stopped at entry %v, not at the FUA commit record:\n%s", at, bad)
	}
}

// markersInOrder fails unless each marker appears in console after the
// one before it.
func markersInOrder(t *testing.T, console string, markers ...string) {
	t.Helper()
	rest := console
	for _, mk := range markers {
		i := strings.Index(rest, mk)
		if i < 0 {
			t.Fatalf("console lacks %q after the markers before it:\n%s", mk, console)
		}
		rest = rest[i+len(mk):]
	}
}

// bootCrashGuest builds gdm statically and an initramfs with it, the
// kernel's nbd-client, e2fsprogs and coreutils' dd (busybox's has no
// oflag=dsync, the FUA write), and runs crashGuest in one TCG boot with
// no disks or network: every file lives on the guest's tmpfs.
func bootCrashGuest(t *testing.T) string {
	nbdClient := testkit.NeedTool(t, "nbd-client")
	dir := t.TempDir()
	gdm := buildForGuest(t, dir, "gdm", "../cmd/gdm")
	return bootTCG(t, dir, crashGuest, tcgGuest{timeout: crashBoot,
		env: []string{"VM_BASE_PROGS=" + nbdClient + " /usr/sbin/mke2fs /usr/sbin/e2fsck", "VM_PROGS=" + gdm + " /usr/bin/dd"}})
}
