package targets

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"syscall"
)

// dm-crypt's messages (dm-crypt.c's crypt_message, 6.1 as the newest):
//
//	key wipe          forget the key: the target holds a random one
//	key set <hex>     take a key of the same length as the table's
//
// Both only while the device is suspended, which is how cryptsetup's
// luksSuspend and luksResume use them (suspend, key wipe; key set,
// resume). A resume is refused while no valid key is set, so no I/O is
// served with the random key; a key set whose hex does not decode also
// leaves no valid key, as dm's does. Refusals wrap EINVAL and carry dm's
// kernel log text; the refused resume wraps EAGAIN, as dm's does.
//
// What a key set does not change: the table's text, which `gdm table
// --showkeys` prints and the state directory keeps, still holds the key
// the table was loaded with, and `gdm table` prints zeros of the same
// length either way. The message's own words are Go strings gdm cannot
// overwrite, where dm overwrites the key in its argument buffer.

var (
	_ Messenger = (*crypt)(nil)
	_ Suspender = (*crypt)(nil)
	_ Resumer   = (*crypt)(nil)
)

// cryptErr is a refused message: dm's log text, wrapping EINVAL. It never
// quotes a key.
func cryptErr(text string) error {
	return fmt.Errorf("crypt: %s: %w", text, syscall.EINVAL)
}

// Message runs `key set <hex>` or `key wipe`; see above.
func (c *crypt) Message(_ context.Context, args []string) (string, error) {
	if len(args) < 2 || !strings.EqualFold(args[0], "key") {
		return "", cryptErr("unrecognised message received")
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if !c.suspended {
		return "", cryptErr("not suspended during key manipulation")
	}
	switch {
	case len(args) == 3 && strings.EqualFold(args[1], "set"):
		return "", c.setKey(args[2])
	case len(args) == 2 && strings.EqualFold(args[1], "wipe"):
		return "", c.wipeKey()
	}
	return "", cryptErr("unrecognised message received")
}

// setKey takes the hex key s, of the table key's length. A key of another
// length, a keyring reference or "-" is refused and changes nothing; a key
// of the right length that is not hex leaves no valid key (dm clears its
// flag before it decodes).
func (c *crypt) setKey(s string) error {
	switch {
	case strings.HasPrefix(s, ":"):
		return fmt.Errorf("%w: kernel keyring keys are not supported; give the key in hex: %w", ErrCryptKey, syscall.EINVAL)
	case s == "-" || len(s)/2 != c.keyBytes:
		return cryptErr("key set: the key size may not change")
	case len(s)%2 != 0:
		// dm drops the odd digit; gdm refuses, as it does in a table.
		return fmt.Errorf("%w: %d hex digits: a key is whole bytes, an even number of digits: %w", ErrCryptKey, len(s), syscall.EINVAL)
	}
	key, ok := decodeHex(s)
	if !ok {
		c.keyUnset = true
		return fmt.Errorf("%w: not hexadecimal: %w", ErrCryptKey, syscall.EINVAL)
	}
	defer clear(key)
	k, err := newCryptKey(&cryptArgs{chain: c.chain, iv: c.ivMode, key: key})
	if err != nil {
		c.keyUnset = true
		return err
	}
	c.replaceKey(k)
	c.keyUnset = false
	return nil
}

// wipeKey puts a random key in the table's key's place, as dm does: the
// cipher stays usable, and nothing it writes or reads means anything.
func (c *crypt) wipeKey() error {
	c.keyUnset = true
	key := make([]byte, c.keyBytes)
	defer clear(key)
	rand.Read(key)
	k, err := newCryptKey(&cryptArgs{chain: c.chain, iv: c.ivMode, key: key})
	if err != nil {
		return err
	}
	c.replaceKey(k)
	return nil
}

// replaceKey puts k in use and wipes the key it replaces. Messages come
// only while the table is suspended, so no I/O holds the old one.
func (c *crypt) replaceKey(k *cryptKey) {
	if old := c.key.Swap(k); old != nil {
		old.wipe()
	}
}

// PreSuspend and PreSuspendUndo have nothing to do: key messages wait for
// PostSuspend, when the I/O has stopped.
func (c *crypt) PreSuspend(context.Context)     {}
func (c *crypt) PreSuspendUndo(context.Context) {}

// PostSuspend opens the device to key messages.
func (c *crypt) PostSuspend(context.Context) {
	c.keyMu.Lock()
	c.suspended = true
	c.keyMu.Unlock()
}

// PreResume refuses while no valid key is set, as dm's crypt_preresume
// does (with EAGAIN).
func (c *crypt) PreResume(context.Context) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if c.keyUnset {
		return fmt.Errorf("crypt: aborting resume - crypt key is not set: %w", syscall.EAGAIN)
	}
	return nil
}

// Resume closes the device to key messages again.
func (c *crypt) Resume(context.Context) {
	c.keyMu.Lock()
	c.suspended = false
	c.keyMu.Unlock()
}
