package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// skGuestBoot bounds the kernel check's one boot: a guard against a hang,
// not a speed bound (three 16 MiB devices hashed twice take well under a
// minute of TCG).
const skGuestBoot = 6 * time.Minute

// skMiB is the unit the guest and the host hash a device in, so that a
// mismatch says where.
const skMiB = 1 << 20

// skDevice is one of gdm's devices as the kernel check sees it: its table
// and status in gdm after the last restart, and the MD5 of its whole
// content and of each MiB, read over NBD.
type skDevice struct {
	name, table, status string
	sum                 string
	mib                 []string
}

// skKernelCheck hands the files the kill loop left to the kernel: gdm is
// killed (idle now; the loop's last kill cut I/O short), started again,
// reads every device whole over NBD, and is killed once more; the files
// must be byte for byte as they were before that restart (loading a store
// and reading write nothing), so that the kernel gets the stores as a
// crash left them, as gdm's restarts do. A TCG guest loads the same tables with
// dmsetup over the origin file and each COW file. Each device must read
// the same bytes in the kernel as in gdm, the kernel must take the tables
// as they are (its chunk size, not one a header overrides) and give each
// snapshot the status gdm gives it, never Invalid.
func skKernelCheck(t *testing.T, d *daemon, names []string) {
	dmsetup := testkit.NeedTool(t, "dmsetup")
	var devs []skDevice
	for _, n := range names {
		devs = append(devs, skDevice{name: n, table: strings.TrimSpace(d.gdm("table", n))})
	}
	disks, script := skGuestScript(devs)
	d.kill9()
	before := skFileSums(t, disks)
	d.start()
	for i := range devs {
		skReadDevice(t, d, &devs[i])
	}
	d.kill9()
	if after := skFileSums(t, disks); after != before {
		t.Fatalf("gdm's restart and reads changed the files: MD5s %s before, %s after", before, after)
	}
	console := bootTCG(t, t.TempDir(), script, tcgGuest{memory: "512", disks: disks, timeout: skGuestBoot,
		env: []string{"VM_BASE_PROGS=", "VM_PROGS=" + dmsetup, "VM_MODULES=virtio_blk dm-mod dm-snapshot"}})
	for _, dv := range devs {
		skCompareGuest(t, console, dv)
	}
	if m := regexp.MustCompile(`SK-DMESG .*(overrides|[Ii]nvalid|[Ee]rror).*`).FindString(console); m != "" {
		t.Errorf("the guest's kernel complained: %s", m)
	}
}

// skFileSums is the MD5 of each file, in order.
func skFileSums(t *testing.T, files []string) string {
	var sums []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := md5.Sum(b)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	return strings.Join(sums, " ")
}

// skReadDevice takes dv's status from gdm and reads it whole, hashing it.
func skReadDevice(t *testing.T, d *daemon, dv *skDevice) {
	t.Helper()
	if table := strings.TrimSpace(d.gdm("table", dv.name)); table != dv.table {
		t.Fatalf("%s: table after a restart %q, before %q", dv.name, table, dv.table)
	}
	dv.status = strings.TrimSpace(d.gdm("status", dv.name))
	k, err := dialSK(d, dv.name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.c.Close()
	whole := md5.New()
	for off := 0; off < skSectors*512; off += skMiB {
		b, err := k.do(nbdCmdRead, uint64(off), nil, skMiB)
		if err != nil {
			t.Fatalf("%s: reading at %d: %v", dv.name, off, err)
		}
		whole.Write(b)
		s := md5.Sum(b)
		dv.mib = append(dv.mib, hex.EncodeToString(s[:]))
	}
	dv.sum = hex.EncodeToString(whole.Sum(nil))
}

// skGuestScript gives each file the tables name a virtio serial, and
// returns the files in serial order and a guest script that links
// /dev/<serial> to its disk, creates each device with gdm's table over
// those links, and prints each one's table, status, MD5 and MD5 per MiB.
func skGuestScript(devs []skDevice) ([]string, string) {
	var disks []string
	serial := map[string]string{}
	var s strings.Builder
	s.WriteString("dmesg -n 1\nexport DM_DISABLE_UDEV=1\n" +
		"for b in /sys/block/vd*; do ln -s /dev/${b##*/} /dev/$(cat $b/serial); done\n")
	for _, dv := range devs {
		f := strings.Fields(dv.table)
		for i, w := range f {
			if !strings.HasPrefix(w, "/") {
				continue
			}
			if serial[w] == "" {
				serial[w] = fmt.Sprintf("disk%d", len(disks))
				disks = append(disks, w)
			}
			f[i] = "/dev/" + serial[w]
		}
		fmt.Fprintf(&s, "echo '%s' | dmsetup create %s\n", strings.Join(f, " "), dv.name)
	}
	for _, dv := range devs {
		fmt.Fprintf(&s, "echo \"SK-TABLE %[1]s $(dmsetup table %[1]s)\"\necho \"SK-STATUS %[1]s $(dmsetup status %[1]s)\"\n"+
			"echo \"SK-SUM %[1]s $(md5sum < /dev/mapper/%[1]s)\"\n"+
			"for i in $(seq 0 %[2]d); do echo \"SK-MIB %[1]s $i $(dd if=/dev/mapper/%[1]s bs=1M skip=$i count=1 2>/dev/null | md5sum)\"; done\n",
			dv.name, skSectors*512/skMiB-1)
	}
	s.WriteString("dmesg | grep -i -e snapshot -e device-mapper | sed 's/^/SK-DMESG /' || true\n")
	for i := len(devs) - 1; i >= 0; i-- {
		fmt.Fprintf(&s, "dmsetup remove %s\n", devs[i].name)
	}
	return disks, s.String()
}

// skCompareGuest checks what the guest printed for dv against gdm's.
func skCompareGuest(t *testing.T, console string, dv skDevice) {
	t.Helper()
	line := func(tag string) string {
		m := regexp.MustCompile(`(?m)^SK-` + tag + ` ` + regexp.QuoteMeta(dv.name) + ` ([^\r\n]*)`).FindStringSubmatch(console)
		if m == nil {
			t.Fatalf("the guest printed no %s of %s:\n%s", tag, dv.name, console)
		}
		return strings.TrimSpace(m[1])
	}
	if got, want := skNoDevs(line("TABLE")), skNoDevs(dv.table); got != want {
		t.Errorf("%s: the kernel's table %q, gdm's %q", dv.name, line("TABLE"), dv.table)
	}
	if st := line("STATUS"); st != dv.status || strings.Contains(st, "Invalid") || strings.Contains(st, "Overflow") {
		t.Errorf("%s: the kernel's status %q, gdm's %q", dv.name, st, dv.status)
	}
	if sum := strings.Fields(line("SUM") + " -")[0]; sum == dv.sum {
		t.Logf("%s: the kernel reads what gdm reads (MD5 %s), status %q", dv.name, sum, line("STATUS"))
		return
	}
	var bad []string
	for i, want := range dv.mib {
		m := regexp.MustCompile(fmt.Sprintf(`(?m)^SK-MIB %s %d ([0-9a-f]{32})`, regexp.QuoteMeta(dv.name), i)).FindStringSubmatch(console)
		if m == nil || m[1] != want {
			bad = append(bad, fmt.Sprint(i))
		}
	}
	t.Errorf("%s: the kernel reads other data than gdm (MD5 %s, gdm's %s); MiBs that differ: %s",
		dv.name, line("SUM"), dv.sum, strings.Join(bad, " "))
}

// skNoDevs is a table with its devices (host paths, or the major:minor
// dmsetup prints) as DEV, for comparing the rest.
func skNoDevs(table string) string {
	f := strings.Fields(table)
	for i, w := range f {
		if strings.HasPrefix(w, "/") || regexp.MustCompile(`^\d+:\d+$`).MatchString(w) {
			f[i] = "DEV"
		}
	}
	return strings.Join(f, " ")
}
