package targets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"golang.org/x/sys/unix"
)

func TestDelayCheck(t *testing.T) {
	cases := []struct {
		args string
		want string
		err  error
	}{
		{"/d 0 0", "/d 0 0", nil},
		{"/d 007 500", "/d 7 500", nil},
		{"/r 1 50 /w 2 100", "/r 1 50 /w 2 100", nil},
		{"/r 0 50 /w 0 100 /f 0 0333", "/r 0 50 /w 0 100 /f 0 333", nil},
		{"/d 0 4294967295", "/d 0 4294967295", nil},
		{"", "", ErrArgCount},
		{"/d 0", "", ErrArgCount},
		{"/d 0 1 /w", "", ErrArgCount},
		{"/d 0 1 /w 0", "", ErrArgCount},
		{"/d 0 1 /w 0 1 /f", "", ErrArgCount},
		{"/d 0 1 /w 0 1 /f 0 1 x", "", ErrArgCount},
		{"/d 0 4294967296", "", ErrOverflow},
		{"/d 0 -1", "", ErrNegative},
		{"/d x 1", "", ErrNotNumber},
		{"/d 0 1 /w 0 1ms", "", ErrNotNumber},
		{"/d 0 1 /w 0 1 /f 18446744073709551615 1", "", ErrOverflow},
	}
	for _, c := range cases {
		got, err := checkDelay(strings.Fields(c.args), 8)
		if !errors.Is(err, c.err) || strings.Join(got, " ") != c.want {
			t.Errorf("check %q = %q, %v; want %q, %v", c.args, got, err, c.want, c.err)
		}
	}
	if _, err := checkDelay([]string{"/r", "0", "1", "", "0", "1"}, 8); !errors.Is(err, ErrEmptyPath) || !strings.Contains(err.Error(), "write") {
		t.Errorf("empty write path: %v, want ErrEmptyPath naming the write class", err)
	}
	if _, err := checkDelay(nil, 8); err == nil || !strings.Contains(err.Error(), "3, 6 or 9") {
		t.Errorf("arg count error %v does not say dm's 3, 6 or 9", err)
	}
}

// delayFixture is a delay target over three 1 MiB files r, w and f.
type delayFixture struct {
	tg      *delayTarget
	r, w, f *Dev
}

// newDelayFixture builds `delay` from args, where the words R, W and F
// stand for the three files' paths.
func newDelayFixture(t *testing.T, args string) delayFixture {
	t.Helper()
	s := NewDevSet(false)
	t.Cleanup(func() { s.Close() })
	paths := map[string]string{}
	for _, n := range []string{"R", "W", "F"} {
		paths[n] = tempFile(t, 1<<20)
	}
	words := strings.Fields(args)
	for i, w := range words {
		if p, ok := paths[w]; ok {
			words[i] = p
		}
	}
	canon, err := checkDelay(words, 64)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newDelayWith(canon, 64, s, realDelayClock{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Destroy() })
	var fx delayFixture
	fx.tg = tg
	fx.r, _ = s.Open(paths["R"])
	fx.w, _ = s.Open(paths["W"])
	fx.f, _ = s.Open(paths["F"])
	return fx
}

// at reads n bytes of dev at off.
func at(t *testing.T, dev *Dev, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := dev.ReadAt(p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDelayRoutesEachClassToItsDevice(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args       string
		rdev, wdev string
		roff, woff int64
	}{
		{"R 1 0", "R", "R", 512, 512},
		{"R 1 0 W 2 0", "R", "W", 512, 1024},
		{"R 1 0 W 2 0 F 3 0", "R", "W", 512, 1024},
	} {
		fx := newDelayFixture(t, c.args)
		devs := map[string]*Dev{"R": fx.r, "W": fx.w, "F": fx.f}
		rdev, wdev := devs[c.rdev], devs[c.wdev]
		if err := rdev.WriteAt([]byte("readme"), c.roff+4096); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 6)
		if err := fx.tg.ReadAt(ctx, p, 4096); err != nil || string(p) != "readme" {
			t.Errorf("%s: read %q, %v from the read device", c.args, p, err)
		}
		syncs := wdev.Syncs()
		if err := fx.tg.WriteAt(ctx, []byte("write!"), 8192, FUA); err != nil {
			t.Fatal(err)
		}
		if wdev.Syncs() != syncs+1 {
			t.Errorf("%s: a FUA write did not sync the write device", c.args)
		}
		if got := at(t, wdev, c.woff+8192, 6); string(got) != "write!" {
			t.Errorf("%s: write landed elsewhere (write device has %q)", c.args, got)
		}
		if err := fx.tg.Zero(ctx, 8192, 4096, ZeroFlags{}); err != nil {
			t.Fatal(err)
		}
		if got := at(t, wdev, c.woff+8192, 6); !bytes.Equal(got, make([]byte, 6)) {
			t.Errorf("%s: zero missed the write device (%q)", c.args, got)
		}
		if err := fx.tg.Trim(ctx, 0, 4096); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDelayExtentsComeFromTheReadDevice(t *testing.T) {
	fx := newDelayFixture(t, "R 0 3600000 W 0 3600000")
	if err := fx.r.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	tgExtents := func(off, n int64, emit func(Extent) bool) error {
		return fx.tg.Extents(context.Background(), off, n, emit) // not held: would hang
	}
	want := collect(t, fx.r.Extents, 0, 1<<16)
	if got := collect(t, tgExtents, 0, 1<<16); len(got) < 2 || !equalExtents(got, want) {
		t.Fatalf("extents %v, want the read device's %v (data then a hole)", got, want)
	}
}

func TestDelayFlushGoesWhereDmSendsIt(t *testing.T) {
	// 3 args: flushes take the one triple's delay; 6: the write triple's;
	// 9: their own. Only the flush class has an hour's delay here.
	for _, args := range []string{"R 0 3600000", "R 0 0 W 0 3600000", "R 0 0 W 0 0 F 0 3600000"} {
		fx := newDelayFixture(t, args)
		done := make(chan error, 1)
		go func() { done <- fx.tg.Flush(context.Background()) }()
		testkit.WaitFor(t, 10*time.Second, args+": flush held", func() bool {
			return fx.tg.Status(StatusInfo) == "0 0 1"
		})
		fx.tg.PreSuspend(context.Background())
		if err := released(t, done); err != nil {
			t.Fatalf("%s: flush: %v", args, err)
		}
	}
	fx := newDelayFixture(t, "R 0 3600000 W 0 0 F 0 0")
	if err := fx.tg.Flush(context.Background()); err != nil { // would hang if held
		t.Fatal(err)
	}
}

func TestDelayReadWaitsAtLeastItsDelay(t *testing.T) {
	fx := newDelayFixture(t, "R 0 30 W 0 0")
	p := make([]byte, 512)
	start := time.Now()
	if err := fx.tg.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Fatalf("read returned after %v, before its 30ms delay", took)
	}
	if err := fx.tg.WriteAt(context.Background(), p, 0, 0); err != nil { // write delay 0
		t.Fatal(err)
	}
	st := fx.tg.Faults()
	if n := st.Requests[FaultDelayed].Load(); n != 1 || st.Delay() < 30*time.Millisecond {
		t.Fatalf("faults: %d delayed for %v; want the read alone, >= 30ms", n, st.Delay())
	}
}

func TestDelayNewRefusesASmallDeviceWithANilTarget(t *testing.T) {
	typ, err := Lookup("delay")
	if err != nil {
		t.Fatal(err)
	}
	s := NewDevSet(false)
	defer s.Close()
	big, small := tempFile(t, 1<<20), tempFile(t, 4096)
	tg, err := typ.New([]string{big, "0", "0", small, "0", "1"}, 64, s)
	if !errors.Is(err, ErrDeviceTooSmall) || !strings.Contains(err.Error(), "write") {
		t.Fatalf("err %v, want ErrDeviceTooSmall for the write device", err)
	}
	if tg != nil { // a table destroys every non-nil target it built
		t.Fatalf("New failed but returned the target %#v", tg)
	}
}

func TestDelaySpliceIsHeldAsARead(t *testing.T) {
	fx := newDelayFixture(t, "R 8 3600000 W 0 0")
	if err := fx.r.WriteAt([]byte("spliced!"), 8*512+4096); err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	done := make(chan error, 1)
	go func() { done <- fx.tg.SpliceTo(context.Background(), fds[1], 4096, 4096) }()
	testkit.WaitFor(t, 10*time.Second, "splice held", func() bool { return fx.tg.Status(StatusInfo) == "1 0 0" })
	fx.tg.PreSuspend(context.Background())
	if err := released(t, done); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	if n, err := unix.Read(fds[0], p); n != 4096 || err != nil || string(p[:8]) != "spliced!" {
		t.Fatalf("pipe got %d bytes %q, %v; want the read device's 4096 at offset 8 sectors", n, p[:8], err)
	}
}
