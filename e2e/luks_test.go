package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// luksPass is the test volumes' passphrase: text, since qemu's secret
// objects must be UTF-8.
const luksPass = "gdm-luks-test-passphrase"

// TestLUKS checks gdm's crypt target against two implementations that
// share no code with it and need no kernel: cryptsetup formats a LUKS1
// volume (a LUKS2 one with 512-byte sectors is converted to LUKS1, since
// qemu 7.2 opens LUKS1 only), qemu's luks driver writes a pattern, gdm
// serves the payload with the master key from luksDump and reads the
// pattern back over NBD; then gdm writes and qemu reads.
func TestLUKS(t *testing.T) {
	cases := []struct {
		name, cipher string
		format       []string
		toLUKS1      bool
	}{
		{"luks1-xts-512", "aes-xts-plain64", []string{"--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size", "512"}, false},
		{"luks1-xts-256", "aes-xts-plain64", []string{"--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size", "256"}, false},
		{"luks1-cbc-essiv", "aes-cbc-essiv:sha256", []string{"--type", "luks1", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"}, false},
		{"luks2-to-luks1", "aes-xts-plain64", []string{"--type", "luks2", "--sector-size", "512", "--pbkdf", "pbkdf2"}, true},
	}
	d := startDaemon(t, "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			img, key, payload := luksVolume(t, dir, c.format, c.toLUKS1)
			qemuLUKS(t, img, "write -P 0xab 0 1M", "write -P 0x5c 3M 64K")

			st, _ := os.Stat(img)
			sectors := st.Size()/512 - payload
			d.gdm("create", c.name, "--table", fmt.Sprintf("0 %d crypt %s %s 0 %s %d", sectors, c.cipher, key, img, payload))
			checkKeyKept(t, d, c.name, key)
			got := filepath.Join(dir, "got.img")
			run(t, "nbdcopy", d.uri(c.name), got)
			data, _ := os.ReadFile(got)
			if !bytes.Equal(data[:1<<20], bytes.Repeat([]byte{0xab}, 1<<20)) ||
				!bytes.Equal(data[3<<20:3<<20+64<<10], bytes.Repeat([]byte{0x5c}, 64<<10)) {
				t.Fatal("gdm does not read what qemu's luks driver wrote")
			}
			out := run(t, "qemu-io", "-f", "raw", "-c", "write -P 0xcd 1M 1M", "-c", "write -P 0x17 5M 4K", d.uri(c.name))
			if strings.Contains(out, "fail") {
				t.Fatalf("qemu-io through gdm:\n%s", out)
			}
			d.gdm("remove", c.name)
			qemuLUKS(t, img, "read -P 0xab 0 1M", "read -P 0xcd 1M 1M", "read -P 0x5c 3M 64K", "read -P 0x17 5M 4K")
		})
	}
}

// checkKeyKept checks where the key of a crypt device is: in the state
// directory (the table must survive a restart) only in files no one but
// the owner can read, and not in the device's status.
func checkKeyKept(t *testing.T, d *daemon, name, key string) {
	t.Helper()
	if st := d.gdm("status", name); strings.Contains(st, key) {
		t.Fatalf("gdm status shows the key: %s", st)
	}
	found := 0
	filepath.WalkDir(d.state, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(key)) {
			found++
			for q := p; len(q) >= len(d.state); q = filepath.Dir(q) {
				if fi, err := os.Stat(q); err != nil || fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("%s holds the key and %s has mode %v (%v)", p, q, fi.Mode(), err)
				}
			}
		}
		return nil
	})
	if found == 0 {
		t.Fatal("the key is in no state file: the device would not survive a restart")
	}
}

// luksVolume formats a 32 MiB file with cryptsetup (PBKDF2 with few
// iterations, to be quick; converted to LUKS1 if toLUKS1) and returns its
// path, master key in hex and payload offset in sectors.
func luksVolume(t *testing.T, dir string, format []string, toLUKS1 bool) (img, key string, payload int64) {
	img = filepath.Join(dir, "luks.img")
	kf := filepath.Join(dir, "key")
	if err := os.WriteFile(kf, []byte(luksPass), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil || os.Truncate(img, 32<<20) != nil {
		t.Fatal("making the image:", err)
	}
	args := append([]string{"luksFormat", "-q", "--key-file", kf, "--pbkdf-force-iterations", "1000"}, format...)
	run(t, "cryptsetup", append(args, img)...)
	if toLUKS1 {
		run(t, "cryptsetup", "convert", "--type", "luks1", "-q", img)
	}
	dump := run(t, "cryptsetup", "luksDump", "--dump-master-key", "--key-file", kf, "-q", img)
	m := regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`).FindStringSubmatch(dump)
	p := regexp.MustCompile(`Payload offset:\s*(\d+)`).FindStringSubmatch(dump)
	if m == nil || p == nil {
		t.Fatalf("no master key or payload offset in luksDump:\n%s", dump)
	}
	payload, _ = strconv.ParseInt(p[1], 10, 64)
	return img, strings.Join(strings.Fields(m[1]), ""), payload
}

// qemuLUKS runs qemu-io commands on img through qemu's own luks driver
// and fails on any pattern mismatch.
func qemuLUKS(t *testing.T, img string, cmds ...string) {
	args := []string{"--object", "secret,id=s0,data=" + luksPass, "--image-opts",
		"driver=luks,key-secret=s0,file.filename=" + img}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := run(t, "qemu-io", args...)
	if strings.Contains(out, "fail") || strings.Count(out, "bytes at offset") != len(cmds) {
		t.Fatalf("qemu-io on the LUKS volume:\n%s", out)
	}
}

// A crypt device comes back after a restart with its key (the state keeps
// the table), and serves 4096-byte crypt sectors over NBD: it advertises
// 4096 as its minimum block size, so a client that honours it (qemu-io)
// turns a 512-byte read into a whole crypt sector's.
func TestCryptSurvivesRestart(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "")
	img := testkit.Sparse(t, d.dir, "c.img", 16<<20)
	key := strings.Repeat("5e", 64)
	d.gdm("create", "c", "--table", "0 32760 crypt aes-xts-plain64 "+key+" 8 "+img+" 8 2 sector_size:4096 iv_large_sectors")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x3c 4K 1M", "-c", "flush", d.uri("c"))
	d.stop()
	d.start()
	out := run(t, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x3c 4K 1M", d.uri("c"))
	if strings.Contains(out, "verification failed") {
		t.Fatalf("after restart:\n%s", out)
	}
	if out := run(t, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x3c 4608 512", d.uri("c")); strings.Contains(out, "verification failed") {
		t.Fatalf("a 512-byte read inside a 4096-byte crypt sector:\n%s", out)
	}
	if out := run(t, "nbdinfo", "--json", d.uri("c")); !strings.Contains(out, `"block_size_minimum": 4096`) {
		t.Fatalf("the minimum block size advertised is not 4096:\n%s", out)
	}
}

// cryptsetup's luksSuspend and luksResume through gdm's verbs: key
// messages are refused on a live device; after suspend and key wipe the
// resume is refused until key set gives the key back, and the data then
// reads as before; `gdm table` shows zeros throughout.
func TestCryptKeyMessages(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "")
	img := testkit.Sparse(t, d.dir, "k.img", 8<<20)
	key := strings.Repeat("a7", 32)
	d.gdm("create", "k", "--table", "0 16384 crypt aes-xts-plain64 "+key+" 0 "+img+" 0")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x61 0 1M", d.uri("k"))
	if out, err := d.try("message", "k", "0", "key", "wipe"); err == nil || !strings.Contains(out, "not suspended") {
		t.Fatalf("key wipe on a live device: %v\n%s", err, out)
	}
	d.gdm("suspend", "k")
	d.gdm("message", "k", "0", "key", "wipe")
	if out, err := d.try("resume", "k"); err == nil || !strings.Contains(out, "crypt key is not set") {
		t.Fatalf("resume after key wipe: %v\n%s", err, out)
	}
	d.gdm("message", "k", "0", "key", "set", key)
	if tbl := d.gdm("table", "k"); strings.Contains(tbl, key) || !strings.Contains(tbl, strings.Repeat("0", 64)) {
		t.Fatalf("gdm table after key set: %s", tbl)
	}
	d.gdm("resume", "k")
	if out := run(t, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x61 0 1M", d.uri("k")); strings.Contains(out, "fail") {
		t.Fatalf("after key set:\n%s", out)
	}
}
