package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// luksGuestBoot bounds the guest's one boot: a guard against a hang, not a
// speed bound (cryptsetup and 16 MiB of dd take well under a minute of
// TCG).
const luksGuestBoot = 6 * time.Minute

// luksGuestWrite is where and how much the guest writes through its own
// mapping: 1 MiB at 2 MiB into the payload.
const luksGuestOff, luksGuestLen = 2 << 20, 1 << 20

// TestLUKS2Kernel checks a LUKS2 volume of 4096-byte crypt sectors, which
// qemu 7.2's luks driver cannot open, against the kernel: gdm on the host
// writes a pattern over the whole payload through the table cryptsetup
// gives dm (checked against the guest's: sector_size:4096, IVs counted in
// 512-byte sectors, no iv_large_sectors); in a TCG guest, cryptsetup opens
// the volume with its passphrase and the guest's dm-crypt must read the
// pattern, then writes 1 MiB of its own; gdm on the host must read that
// back, and the rest unchanged.
func TestLUKS2Kernel(t *testing.T) {
	testkit.NeedTool(t, "cryptsetup")
	testkit.NeedTool(t, "nbdcopy")
	dir := t.TempDir()
	img, key, payload := luksVolume(t, dir, []string{"--type", "luks2", "--sector-size", "4096", "--pbkdf", "pbkdf2"}, false)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size() - payload*512
	// cryptsetup 2.6 counts LUKS2's IVs in 512-byte sectors: its table
	// has no iv_large_sectors (the guest prints it; checked below).
	table := fmt.Sprintf("0 %d crypt aes-xts-plain64 %s 0 %s %d 1 sector_size:4096", size/512, key, img, payload)
	pattern := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{17})
	rng.Read(pattern)
	patFile := filepath.Join(dir, "pattern")
	if err := os.WriteFile(patFile, pattern, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "")
	d.gdm("create", "l2", "--table", table)
	run(t, "nbdcopy", patFile, d.uri("l2"))
	d.gdm("remove", "l2")

	sum := sha256.Sum256(pattern)
	console := bootLUKSGuest(t, dir, img, luksGuestScript(hex.EncodeToString(sum[:])))
	if !regexp.MustCompile(`sector size:\s*4096`).MatchString(console) {
		t.Fatalf("cryptsetup in the guest did not map 4096-byte sectors:\n%s", console)
	}
	checkGuestTable(t, console, table)
	m := regexp.MustCompile(`LUKS-WROTE ([0-9a-f]{64})`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("the guest did not say what it wrote:\n%s", console)
	}

	d.gdm("create", "l2", "--table", table)
	got := filepath.Join(dir, "got")
	run(t, "nbdcopy", d.uri("l2"), got)
	data, err := os.ReadFile(got)
	if err != nil || int64(len(data)) != size {
		t.Fatalf("reading back through gdm: %d bytes, %v", len(data), err)
	}
	wrote := sha256.Sum256(data[luksGuestOff : luksGuestOff+luksGuestLen])
	if hex.EncodeToString(wrote[:]) != m[1] {
		t.Error("gdm does not read what the guest's dm-crypt wrote")
	}
	if !bytes.Equal(data[:luksGuestOff], pattern[:luksGuestOff]) ||
		!bytes.Equal(data[luksGuestOff+luksGuestLen:], pattern[luksGuestOff+luksGuestLen:]) {
		t.Error("around the guest's write, gdm does not read its own pattern any more")
	}
}

// checkGuestTable checks that the table cryptsetup gave the guest's dm
// is the one gdm served, but for the device.
func checkGuestTable(t *testing.T, console, table string) {
	t.Helper()
	m := regexp.MustCompile(`LUKS-TABLE ([^\r\n]*)`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("the guest printed no table:\n%s", console)
	}
	got, want := strings.Fields(m[1]), strings.Fields(table)
	if len(got) != len(want) || len(got) < 7 {
		t.Fatalf("cryptsetup's table %q is not of the form of gdm's %q", m[1], table)
	}
	got[6], want[6] = "DEV", "DEV"
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("cryptsetup's table in the guest:\n%s\ngdm's:\n%s", m[1], table)
	}
}

// luksGuestScript opens /dev/vda with cryptsetup in a guest without udev
// (libdevmapper makes the nodes itself when told udev is absent; no
// locks, no keyring), checks the whole mapping's hash against want, and
// writes random data through it, printing its hash.
func luksGuestScript(want string) string {
	return fmt.Sprintf(`dmesg -n 1
export DM_DISABLE_UDEV=1
mkdir -p /run/cryptsetup
printf '%%s' '%s' > /tmp/key
cs="cryptsetup --disable-locks --disable-keyring"
$cs open --key-file /tmp/key /dev/vda x
$cs status x
echo "LUKS-TABLE $(dmsetup table --showkeys x)"
sum=$(sha256sum < /dev/mapper/x | cut -d' ' -f1)
echo "LUKS-READ $sum"
[ "$sum" = %s ] || { echo "the guest's dm-crypt does not read gdm's pattern"; exit 1; }
dd if=/dev/urandom of=/tmp/b bs=4096 count=%d 2>/dev/null
echo "LUKS-WROTE $(sha256sum < /tmp/b | cut -d' ' -f1)"
dd if=/tmp/b of=/dev/mapper/x bs=4096 seek=%d conv=fsync 2>/dev/null
$cs close x
`, luksPass, want, luksGuestLen/4096, luksGuestOff/4096)
}

// bootLUKSGuest boots a TCG guest with cryptsetup, dm-crypt and img as
// its virtio disk /dev/vda, runs script, and returns the console; the
// guest must reach GDM-VM-OK. The CPU has AES-NI, as the oracle's does.
func bootLUKSGuest(t *testing.T, dir, img, script string) string {
	cs := testkit.NeedTool(t, "cryptsetup")
	dmsetup := testkit.NeedTool(t, "dmsetup")
	return bootTCG(t, dir, script, tcgGuest{cpu: aesCPU, disks: []string{img}, timeout: luksGuestBoot,
		env: []string{"VM_BASE_PROGS=", "VM_PROGS=" + cs + " " + dmsetup,
			"VM_MODULES=virtio_blk dm-mod dm-crypt xts aesni-intel algif_skcipher"}})
}
