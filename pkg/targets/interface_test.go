package targets

import (
	"context"
	"errors"
	"testing"
)

// The four targets answer TABLE status with their canonical args, as
// `dmsetup table` prints them, and INFO as dm does.
func TestStatusForms(t *testing.T) {
	var p [3]string
	for i := range p {
		p[i] = tempFile(t, 1<<20)
	}
	s := NewDevSet(false)
	defer s.Close()
	for _, c := range []struct {
		typ     string
		args    []string
		sectors uint64
		info    string
	}{
		{"linear", []string{p[0], "0008"}, 16, ""},
		{"striped", []string{"2", "8", p[1], "0", p[2], "16"}, 32, "2 " + p[1] + " " + p[2] + " 1 AA"},
		{"zero", nil, 8, ""},
		{"error", nil, 8, ""},
	} {
		typ, err := Lookup(c.typ)
		if err != nil {
			t.Fatal(err)
		}
		args, err := typ.Check(c.args, c.sectors)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := typ.New(args, c.sectors, s)
		if err != nil {
			t.Fatal(err)
		}
		// The TABLE form is left to the table, which keeps the args.
		if got := tg.Status(StatusTable); got != "" {
			t.Errorf("%s: TABLE status %q, want \"\" (the table prints the args)", c.typ, got)
		}
		if got := tg.Status(StatusInfo); got != c.info {
			t.Errorf("%s: INFO status %q, want %q", c.typ, got, c.info)
		}
	}
}

// A FUA write syncs the devices it wrote to, and only those; a plain write
// syncs none.
func TestFUASyncsTheDevicesWritten(t *testing.T) {
	ctx := context.Background()
	var paths []string
	for range 3 {
		paths = append(paths, tempFile(t, 1<<20))
	}
	s := NewDevSet(false)
	defer s.Close()
	lin, err := newLinear([]string{paths[0], "0"}, 64, s)
	if err != nil {
		t.Fatal(err)
	}
	str, err := newStriped([]string{"3", "8", paths[0], "64", paths[1], "0", paths[2], "0"}, 72, s)
	if err != nil {
		t.Fatal(err)
	}
	syncs := func() (out [3]uint64) {
		for i, d := range s.Devs() {
			out[i] = d.Syncs()
		}
		return out
	}
	p := make([]byte, 8192)
	steps := []struct {
		what  string
		write func() error
		want  [3]uint64
	}{
		{"plain linear", func() error { return lin.WriteAt(ctx, p, 0, 0) }, [3]uint64{0, 0, 0}},
		{"FUA linear", func() error { return lin.WriteAt(ctx, p, 0, FUA) }, [3]uint64{1, 0, 0}},
		{"plain striped", func() error { return str.WriteAt(ctx, p, 0, 0) }, [3]uint64{1, 0, 0}},
		// 4 KiB from 2 KiB in: the end of chunk 0 (leg 0), the start of
		// chunk 1 (leg 1).
		{"FUA striped, legs 0 and 1", func() error { return str.WriteAt(ctx, p[:4096], 2048, FUA) }, [3]uint64{2, 1, 0}},
		{"FUA striped, one chunk of leg 2", func() error { return str.WriteAt(ctx, p[:512], 2*4096, FUA) }, [3]uint64{2, 1, 1}},
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if got := syncs(); got != st.want {
			t.Fatalf("after %s: syncs per device %v, want %v", st.what, got, st.want)
		}
	}
}

func TestRegisterRefusesADuplicateName(t *testing.T) {
	if err := Register(&Type{Name: "linear"}); !errors.Is(err, ErrDuplicateType) {
		t.Fatalf("Register(linear) = %v, want ErrDuplicateType", err)
	}
}

// Every target type says its syntax and what it does: gdm -h and gdm(8)
// list them (stub types of tests register none and are not listed).
func TestEveryTypeDocumented(t *testing.T) {
	for _, n := range []string{"linear", "striped", "zero", "error", "flakey", "dust", "delay", "crypt", "log-writes", "snapshot", "snapshot-origin", "snapshot-merge"} {
		tp, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if tp.Summary == "" || (tp.Syntax == "" && n != "zero" && n != "error") {
			t.Errorf("target %s has no Summary or Syntax", n)
		}
	}
}
