package e2e

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// No Docker engine runs here, so the Dockerfile is checked two ways: parsed
// with BuildKit's own parser and held to what the image must be, and its
// build step run as written, producing a static binary.
func TestDockerfile(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("BuildKit cannot parse the Dockerfile: %v", err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("parser warnings: %v", res.Warnings)
	}
	var froms, users, exposes, volumes, health, builds, afterBuild []string
	stage := 0
	for _, n := range res.AST.Children {
		args := []string{}
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		switch strings.ToLower(n.Value) {
		case "from":
			froms = append(froms, strings.Join(args, " "))
			stage++
		case "user":
			users = append(users, args...)
		case "expose":
			exposes = append(exposes, args...)
		case "volume":
			volumes = append(volumes, args...)
		case "healthcheck":
			health = append(health, n.Original)
		case "run":
			if stage == 1 && strings.Contains(n.Original, "go build") {
				builds = append(builds, strings.TrimPrefix(n.Original, "RUN "))
			} else if stage == 1 && len(builds) > 0 {
				afterBuild = append(afterBuild, strings.TrimPrefix(n.Original, "RUN "))
			}
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[0], "golang:") {
		t.Errorf("want a multi-stage build starting from golang, got FROM %v", froms)
	}
	if len(froms) == 0 {
		t.FailNow()
	}
	if last := froms[len(froms)-1]; !strings.Contains(last, "distroless/static") {
		t.Errorf("runtime image %q is not a small static base", last)
	}
	if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0"}, users[len(users)-1]) {
		t.Errorf("runs as %v, want a non-root user", users)
	}
	for _, p := range []string{"10809", "9810"} {
		if !slices.Contains(exposes, p) {
			t.Errorf("EXPOSE lacks %s: %v", p, exposes)
		}
	}
	for _, v := range []string{"/var/lib/gdm", "/run/gdm"} {
		if !slices.Contains(volumes, v) {
			t.Errorf("VOLUME lacks %s: %v", v, volumes)
		}
	}
	if len(health) != 1 || !strings.Contains(health[0], "/gdm") {
		t.Errorf("HEALTHCHECK: %v", health)
	}
	// The build step, run as written (its /out/ redirected to a temp dir).
	if len(builds) != 1 {
		t.Fatalf("want one go build step, got %v", builds)
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(builds[0], "/out/", out+"/"))
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", builds[0], err, b)
	}
	bin, err := elf.Open(filepath.Join(out, "gdm"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked; distroless/static needs a static one")
		}
	}
	if v, err := exec.Command(filepath.Join(out, "gdm"), "version").Output(); err != nil || !strings.Contains(string(v), "Client version") {
		t.Fatalf("built binary does not run: %v %s", err, v)
	}
	// The steps after it lay out the image's files: the operator's kit
	// (rules, dashboard, unit) and gdm(8).
	for _, step := range afterBuild {
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(step, "/out/", out+"/"))
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, b)
		}
	}
	for _, f := range []string{"usr/share/gdm/gdm-rules.yml", "usr/share/gdm/gdm.json", "usr/share/gdm/gdm.service", "usr/share/man/man8/gdm.8"} {
		if st, err := os.Stat(filepath.Join(out, "root", f)); err != nil || st.Size() == 0 {
			t.Errorf("the image lacks /%s: %v", f, err)
		}
	}
}
