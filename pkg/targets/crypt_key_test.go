package targets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

// cryptMsg sends a message of space-separated words.
func cryptMsg(c *crypt, words string) error {
	_, err := c.Message(context.Background(), strings.Fields(words))
	return err
}

// Key messages are taken only between PostSuspend and Resume, as dm takes
// them only while DM_CRYPT_SUSPENDED is set.
func TestCryptKeyMessagesNeedSuspend(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCrypt(t, "aes-xts-plain64 "+key512+" 0 DEV 0", 8, 8)
	check := func(when string) {
		for _, m := range []string{"key wipe", "key set " + key512} {
			if err := cryptMsg(c, m); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "not suspended") {
				t.Fatalf("%s: %q: %v, want EINVAL: not suspended", when, m[:8], err)
			}
		}
	}
	check("live")
	c.PreSuspend(ctx)
	check("after PreSuspend")
	c.PreSuspendUndo(ctx)
	c.PostSuspend(ctx)
	if err := cryptMsg(c, "KEY SET "+key512); err != nil {
		t.Fatalf("suspended: %v", err)
	}
	if err := c.PreResume(ctx); err != nil {
		t.Fatal(err)
	}
	c.Resume(ctx)
	check("resumed")
}

// key wipe leaves the table unable to resume until key set gives a key;
// the data then reads back, the wiped key's schedules are zero, and the
// TABLE status still shows the key as zeros.
func TestCryptKeyWipeThenSet(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCrypt(t, "aes-cbc-essiv:sha256 "+key256+" 0 DEV 0", 16, 16)
	table := c.Status(StatusTable)
	data := bytes.Repeat([]byte("gdm crypt key!\n"), 512)[:4096]
	if err := c.WriteAt(ctx, data, 0, 0); err != nil {
		t.Fatal(err)
	}
	old := c.key.Load().blocks
	c.PostSuspend(ctx)
	if err := cryptMsg(c, "key wipe"); err != nil {
		t.Fatal(err)
	}
	for _, b := range old {
		if !allZero(blockMemory(b)) {
			t.Fatal("key wipe left the key's schedule in memory")
		}
	}
	got := make([]byte, len(data))
	if err := c.ReadAt(ctx, got, 0); err != nil || bytes.Equal(got, data) {
		t.Fatalf("the wiped target still decrypts (%v)", err)
	}
	for i := 0; i < 2; i++ { // a refused resume may be tried again
		if err := c.PreResume(ctx); !errors.Is(err, syscall.EAGAIN) || !strings.Contains(err.Error(), "crypt key is not set") {
			t.Fatalf("resume after key wipe: %v, want EAGAIN", err)
		}
	}
	if err := cryptMsg(c, "key set "+strings.ToUpper(key256)); err != nil {
		t.Fatal(err)
	}
	if err := c.PreResume(ctx); err != nil {
		t.Fatal(err)
	}
	c.Resume(ctx)
	if err := c.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after key set the data does not read back (%v)", err)
	}
	if s := c.Status(StatusTable); s != table || strings.Contains(s, key256[:16]) {
		t.Fatalf("TABLE status after key set: %q, want %q", s, table)
	}
}

// key set with another key of the same length decrypts with it: the
// target reads what a target built with that key reads.
func TestCryptKeySetOtherKey(t *testing.T) {
	ctx := context.Background()
	other := strings.Repeat("c3", 64)
	c, dev := newTestCrypt(t, "aes-xts-plain64 "+key512+" 8 DEV 0 1 sector_size:4096", 16, 16)
	if err := c.WriteAt(ctx, bytes.Repeat([]byte{7}, 8192), 0, 0); err != nil {
		t.Fatal(err)
	}
	c.PostSuspend(ctx)
	if err := cryptMsg(c, "key set "+other); err != nil {
		t.Fatal(err)
	}
	c.Resume(ctx)
	got := make([]byte, 8192)
	if err := c.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	canon, err := checkCrypt([]string{"aes-xts-plain64", other, "8", dev.Path(), "0", "1", "sector_size:4096"}, 16)
	if err != nil {
		t.Fatal(err)
	}
	devs := NewDevSet(false)
	t.Cleanup(func() { devs.Close() })
	ref, err := newCrypt(canon, 16, devs)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8192)
	if err := ref.ReadAt(ctx, want, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after key set the target does not decrypt with the new key (%v)", err)
	}
}

// Refused key messages: wrong words, a key of another length, "-", a
// keyring key and an odd number of digits change nothing; a key of the
// right length that is not hex leaves no valid key, as dm clears its flag
// before decoding.
func TestCryptKeyMessageRefusals(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCrypt(t, "aes-xts-plain64 "+key256+" 0 DEV 0", 8, 8)
	c.PostSuspend(ctx)
	for _, m := range []string{"key", "wipe key", "key wipe now", "key set", "key set " + key256 + " x", "key unset",
		"key set " + key512, "key set -", "key set :32:logon:k", "key set " + key256 + "0", "key set " + key256[:62]} {
		err := cryptMsg(c, m)
		if !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("%q: %v, want EINVAL", m, err)
		}
		if strings.Contains(err.Error(), key256[:16]) {
			t.Fatalf("%q: the error quotes the key: %v", m, err)
		}
		if err := c.PreResume(ctx); err != nil {
			t.Fatalf("after %q the key is no longer valid: %v", m, err)
		}
	}
	if err := cryptMsg(c, "key set zz"+key256[2:]); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a key that is not hex: %v", err)
	}
	if err := c.PreResume(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("resume after a key that is not hex: %v, want EAGAIN", err)
	}
	if err := cryptMsg(c, "key set "+key256); err != nil || c.PreResume(ctx) != nil {
		t.Fatalf("key set after a bad one: %v", err)
	}
}
