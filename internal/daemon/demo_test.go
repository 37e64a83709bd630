package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A demo leg is created sparse at its size, or reused if it is a regular
// file of ours; a symlink, a hard link or someone else's file is refused
// and left as it was.
func TestMakeDemoLeg(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "leg0.img")
	if err := makeDemoLeg(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Size() != demoSize/demoLegs || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new leg: %v %v", fi, err)
	}
	if err := makeDemoLeg(fresh); err != nil {
		t.Fatalf("reusing our own leg: %v", err)
	}
	cases := []struct {
		name  string
		setup func(p string) error
		want  string
	}{
		{"symlink", func(p string) error { return os.Symlink(secret, p) }, "is a symlink"},
		{"hard-link", func(p string) error { return os.Link(secret, p) }, "hard links"},
		{"dangling-symlink", func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) }, "is a symlink"},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			name  string
			setup func(p string) error
			want  string
		}{"other-owner", func(p string) error {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}, "owned by uid 65534"})
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := c.setup(p); err != nil {
			t.Fatal(err)
		}
		err := makeDemoLeg(p)
		if !errors.Is(err, errDemoLeg) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want errDemoLeg saying %q", c.name, err, c.want)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "root only" {
		t.Fatalf("the secret changed: now %d bytes, %v", len(b), err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dangling symlink's target was created: %v", err)
	}
}
