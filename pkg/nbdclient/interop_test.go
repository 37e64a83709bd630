package nbdclient

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// exercise runs every command against an export of at least 4 MiB that
// starts zeroed, and checks the data.
func exercise(t *testing.T, cl *Client) {
	ctx := testCtx(t)
	pat := make([]byte, 1<<20)
	for i := range pat {
		pat[i] = byte(i*31 + 1)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 { // 8 writes in flight, then reads
		wg.Go(func() {
			off := int64(i) * 128 << 10
			if errs[i] = cl.WriteAt(ctx, pat[off:off+128<<10], off, i%2 == 0); errs[i] == nil {
				got := make([]byte, 128<<10)
				if errs[i] = cl.ReadAt(ctx, got, off); errs[i] == nil && !bytes.Equal(got, pat[off:off+128<<10]) {
					t.Errorf("piece %d read back wrong", i)
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
	}
	mustOK(t, cl.Flush(ctx))
	mustOK(t, cl.Zero(ctx, 0, 64<<10, false, false))
	mustOK(t, cl.Trim(ctx, 1<<20, 1<<20)) // never written: stays zero
	got := make([]byte, 2<<20)
	mustOK(t, cl.ReadAt(ctx, got, 0))
	want := append(append(make([]byte, 64<<10), pat[64<<10:]...), make([]byte, 1<<20)...)
	if !bytes.Equal(got, want) {
		t.Fatal("data after zero and trim differs")
	}
	var sum int64
	err := cl.Extents(ctx, 0, cl.Size(), func(e Extent) bool { sum += e.Length; return true })
	if err != nil || sum != cl.Size() {
		t.Fatalf("extents cover %d of %d: %v", sum, cl.Size(), err)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dialUnix(t *testing.T, sock, export string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, Options{Network: "unix", Address: sock, Export: export})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestNbdkitMemory(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nbdkit.sock")
	nbdtest.StartTool(t, sock, "nbdkit", "-f", "-U", sock, "memory", "8M")
	cl := dialUnix(t, sock, "")
	if i := cl.Info(); i.Size != 8<<20 || !i.Structured || !i.HasAllocation || i.Flags&FlagCanMultiConn == 0 {
		t.Fatalf("nbdkit info %+v", i)
	}
	exercise(t, cl)
}

func TestQemuNbd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "qemu.sock")
	img := testkit.Sparse(t, dir, "img", 8<<20)
	nbdtest.StartTool(t, sock, "qemu-nbd", "-t", "-e", "8", "-f", "raw", "-x", "vol", "-k", sock, img)
	cl := dialUnix(t, sock, "vol")
	if i := cl.Info(); i.Size != 8<<20 || !i.Structured || !i.HasAllocation {
		t.Fatalf("qemu-nbd info %+v", i)
	}
	exercise(t, cl)
	data, err := os.ReadFile(img)
	if err != nil || data[64<<10] != byte(1) { // pat[i] = i*31+1, and 64Ki*31 is 0 mod 256
		t.Fatalf("image holds other data: %v", err)
	}
}
