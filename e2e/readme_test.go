package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// shBlocks returns the README's ```sh blocks, each with the HTML comment
// marker (if any) on the line before it.
func shBlocks(t *testing.T) (blocks []string, markers []string) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)(<!-- readme-test: (\\w+) -->\n)?```sh\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		blocks = append(blocks, m[3])
		markers = append(markers, m[2])
	}
	return blocks, markers
}

// The README drift check: every command block in the README is run here,
// or is known to be run elsewhere (named below); a new block that is
// neither fails this test.
func TestReadmeCommands(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	testkit.NeedTool(t, "nbdinfo")
	testkit.NeedTool(t, "curl")
	blocks, markers := shBlocks(t)
	if len(blocks) < 4 {
		t.Fatalf("found %d sh blocks in README.md", len(blocks))
	}
	seen := map[string]bool{}
	for i, block := range blocks {
		cmd := strings.TrimSpace(block)
		switch {
		case cmd == "go run ./cmd/gdm serve --demo":
			seen["demo"] = true
		case cmd == "bash e2e/test-all.sh":
			ci, err := os.ReadFile("../.ci/run")
			if err != nil || !bytes.Contains(ci, []byte("e2e/test-all.sh")) {
				t.Errorf(".ci/run does not run the README's test command: %v", err)
			}
			seen["test"] = true
		case markers[i] == "walkthrough":
			seen["walkthrough"] = true
		case markers[i] == "attach":
			// Run inside the VM by TestAttachGuest (attach-guest.sh).
			guest, _ := os.ReadFile("attach-guest.sh")
			for _, line := range strings.Split(cmd, "\n") {
				if !bytes.Contains(guest, []byte(line)) {
					t.Errorf("README command %q is not run by attach-guest.sh", line)
				}
			}
		case strings.HasPrefix(cmd, "nbd-client "):
			// Run inside the VM by TestKernelClient (vm_test.go).
			vm, _ := os.ReadFile("vm_test.go")
			for _, line := range strings.Split(cmd, "\n") {
				if !bytes.Contains(vm, []byte(strings.Fields(line)[0])) {
					t.Errorf("README command %q is not run by vm_test.go", line)
				}
			}
		default:
			t.Errorf("README sh block %d is run by no test:\n%s", i, block)
		}
	}
	for _, k := range []string{"demo", "test", "walkthrough"} {
		if !seen[k] {
			t.Errorf("README lacks its %s block", k)
		}
	}
	var walk string
	for i, m := range markers {
		if m == "walkthrough" {
			walk = blocks[i]
		}
	}

	// Command 1, as written (ports and TMPDIR moved aside for the test).
	tmp := t.TempDir()
	nbdAddr, metricsAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, "go", "run", "./cmd/gdm", "serve", "--demo", "--nbd-listen", nbdAddr, "--metrics-listen", metricsAddr)
	demo.Dir = ".."
	demo.Env = append(os.Environ(), "TMPDIR="+tmp, "GDM_CONTROL=")
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var demoOut lockedBuffer // written by exec's copier while we read it
	demo.Stdout, demo.Stderr = &demoOut, &demoOut
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-demo.Process.Pid, syscall.SIGTERM)
		demo.Wait()
	}()
	control := filepath.Join(tmp, "gdm-demo", "gdm.sock")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if c, err := net.Dial("unix", control); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not come up:\n%s", demoOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The URI line may follow the control socket by a moment.
	for !strings.Contains(demoOut.String(), "nbd://"+nbdAddr+"/demo") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo does not print its URI:\n%s", demoOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The walkthrough, line by line as a script, against the demo.
	script := strings.NewReplacer("/tmp/gdm-demo", filepath.Join(tmp, "gdm-demo"),
		"127.0.0.1:10809", nbdAddr, "127.0.0.1:9810", metricsAddr).Replace(walk)
	sh := exec.Command("bash", "-euo", "pipefail", "-x", "-c", script)
	sh.Env = append(os.Environ(), "PATH="+filepath.Dir(gdmBin)+":"+os.Getenv("PATH"))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("README walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"demo\t(2097152 sectors, ACTIVE)", "1 AAAA", "0 65536 linear", "gdm_device_io_bytes_total{device=\"demo\",op=\"read\"}"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
}
