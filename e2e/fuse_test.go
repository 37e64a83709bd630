package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// nbdfuseMount exposes a device as a file through nbdfuse (a new NBD
// connection) and returns the file and a function that unmounts it.
func nbdfuseMount(t *testing.T, uri string) (string, func()) {
	t.Helper()
	mnt := t.TempDir()
	cmd := exec.Command(testkit.NeedTool(t, "nbdfuse"), mnt, uri)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mnt, "nbd")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("nbdfuse did not come up: %s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return file, func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
			cmd.Process.Kill()
		}
		cmd.Wait()
	}
}

// mkfs.ext4 on a device seen through nbdfuse, mount it with -o loop, write
// files, unmount; remount through a new connection, compare checksums, and
// e2fsck -fn clean.
func TestFilesystemThroughNbdfuse(t *testing.T) {
	if os.Getuid() != 0 {
		testkit.SkipOrFail(t, "mount needs root")
	}
	testkit.NeedTool(t, "mkfs.ext4")
	testkit.NeedTool(t, "e2fsck")
	d := startDaemon(t, "")
	files := t.TempDir()
	var legs []string
	for i := range 4 {
		legs = append(legs, testkit.Sparse(t, files, fmt.Sprintf("leg%d.img", i), 64<<20))
	}
	d.gdm("create", "fs", "--table", fmt.Sprintf("0 %d striped 4 128 %s 0 %s 0 %s 0 %s 0", 256<<11, legs[0], legs[1], legs[2], legs[3]))

	img, unmount := nbdfuseMount(t, d.uri("fs"))
	run(t, "mkfs.ext4", "-q", "-F", img)
	dir := t.TempDir()
	run(t, "mount", "-o", "loop", img, dir)
	sums := map[string][32]byte{}
	for i := range 8 {
		data := make([]byte, (i+1)*1536*1024+i*777)
		rand.Read(data)
		name := fmt.Sprintf("file%d", i)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		sums[name] = sha256.Sum256(data)
	}
	run(t, "umount", dir)
	unmount()

	img, unmount = nbdfuseMount(t, d.uri("fs")) // a new connection
	defer unmount()
	run(t, "mount", "-o", "loop,ro", img, dir)
	for name, want := range sums {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || sha256.Sum256(got) != want {
			t.Errorf("%s after remount: %v, checksum differs: %v", name, err, sha256.Sum256(got) != want)
		}
	}
	run(t, "umount", dir)
	run(t, "e2fsck", "-fn", img)
}
