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
	df := parseDockerfile(t)
	df.checkImage(t)
	df.runBuild(t)
}

// dockerfile is what the checks need of the parsed Dockerfile.
type dockerfile struct {
	froms, users, exposes, volumes, health []string
	// builds are the first stage's go build steps; afterBuild the steps
	// of that stage after them.
	builds, afterBuild []string
}

// parseDockerfile parses ../Dockerfile with BuildKit's parser.
func parseDockerfile(t *testing.T) *dockerfile {
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
	df := &dockerfile{}
	stage := 0
	for _, n := range res.AST.Children {
		args := []string{}
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		switch strings.ToLower(n.Value) {
		case "from":
			df.froms = append(df.froms, strings.Join(args, " "))
			stage++
		case "user":
			df.users = append(df.users, args...)
		case "expose":
			df.exposes = append(df.exposes, args...)
		case "volume":
			df.volumes = append(df.volumes, args...)
		case "healthcheck":
			df.health = append(df.health, n.Original)
		case "run":
			if stage == 1 && strings.Contains(n.Original, "go build") {
				df.builds = append(df.builds, strings.TrimPrefix(n.Original, "RUN "))
			} else if stage == 1 && len(df.builds) > 0 {
				df.afterBuild = append(df.afterBuild, strings.TrimPrefix(n.Original, "RUN "))
			}
		}
	}
	return df
}

// checkImage holds the image to its shape: a multi-stage build onto a
// static base, a non-root user, gdm's ports and volumes, a health check.
func (df *dockerfile) checkImage(t *testing.T) {
	if len(df.froms) < 2 || !strings.HasPrefix(df.froms[0], "golang:") {
		t.Errorf("want a multi-stage build starting from golang, got FROM %v", df.froms)
	}
	if len(df.froms) == 0 {
		t.FailNow()
	}
	if last := df.froms[len(df.froms)-1]; !strings.Contains(last, "distroless/static") {
		t.Errorf("runtime image %q is not a small static base", last)
	}
	if len(df.users) == 0 || slices.Contains([]string{"root", "0", "0:0"}, df.users[len(df.users)-1]) {
		t.Errorf("runs as %v, want a non-root user", df.users)
	}
	for _, p := range []string{"10809", "9810"} {
		if !slices.Contains(df.exposes, p) {
			t.Errorf("EXPOSE lacks %s: %v", p, df.exposes)
		}
	}
	for _, v := range []string{"/var/lib/gdm", "/run/gdm"} {
		if !slices.Contains(df.volumes, v) {
			t.Errorf("VOLUME lacks %s: %v", v, df.volumes)
		}
	}
	if len(df.health) != 1 || !strings.Contains(df.health[0], "/gdm") {
		t.Errorf("HEALTHCHECK: %v", df.health)
	}
}

// runBuild runs the build step as written (its /out/ redirected to a temp
// dir), checks that it made a static binary that runs, then runs the steps
// after it and checks the files they lay out.
func (df *dockerfile) runBuild(t *testing.T) {
	if len(df.builds) != 1 {
		t.Fatalf("want one go build step, got %v", df.builds)
	}
	out := t.TempDir()
	runStep := func(step string) {
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(step, "/out/", out+"/"))
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, b)
		}
	}
	runStep(df.builds[0])
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
	for _, step := range df.afterBuild {
		runStep(step)
	}
	for _, f := range []string{"usr/share/gdm/gdm-rules.yml", "usr/share/gdm/gdm.json", "usr/share/gdm/gdm.service", "usr/share/man/man8/gdm.8"} {
		if st, err := os.Stat(filepath.Join(out, "root", f)); err != nil || st.Size() == 0 {
			t.Errorf("the image lacks /%s: %v", f, err)
		}
	}
}
