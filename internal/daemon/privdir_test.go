package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheckPrivateDir(t *testing.T) {
	base := t.TempDir()
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	target := filepath.Join(base, "target")
	cases := []struct {
		name  string
		setup func() string
		want  string // "" for accepted
	}{
		{"missing", func() string { return filepath.Join(base, "new", "state") }, ""},
		{"private", func() string { return mkdir("private", 0o700) }, ""},
		{"readable", func() string { return mkdir("readable", 0o755) }, ""},
		{"world-writable", func() string { return mkdir("ww", 0o777) }, "group- or other-writable"},
		{"group-writable", func() string { return mkdir("gw", 0o770) }, "group- or other-writable"},
		{"sticky-tmp-like", func() string { return mkdir("sticky", 0o1777) }, "group- or other-writable"},
		{"symlink", func() string {
			p := filepath.Join(base, "link")
			os.Symlink(mkdir("real", 0o700), p)
			return p
		}, "is a symlink"},
		{"dangling-symlink", func() string {
			p := filepath.Join(base, "dangling")
			os.Symlink(target, p)
			return p
		}, "is a symlink"},
		{"file", func() string {
			p := filepath.Join(base, "file")
			os.WriteFile(p, nil, 0o600)
			return p
		}, "is not a directory"},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			name  string
			setup func() string
			want  string
		}{"other-owner", func() string {
			p := mkdir("nobody", 0o700)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is owned by uid 65534"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.setup()
			err := checkPrivateDir(p)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(p)
				if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
					t.Fatalf("after the check: %v %v", fi.Mode(), err)
				}
				return
			}
			if !errors.Is(err, errNotPrivate) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("%v; want errNotPrivate naming %s and saying %q", err, p, c.want)
			}
		})
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dangling symlink's target was created: %v", err)
	}
	// A made directory is 0700 whatever the umask.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	p := filepath.Join(base, "umask0")
	if err := checkPrivateDir(p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("made under umask 0: %v %v", fi.Mode(), err)
	}
}
