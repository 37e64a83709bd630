package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
)

// Errors of names and uuids; the control API answers them 422 (or 409 for
// a uuid in use).
var (
	errBadName   = errors.New("bad device name: use letters, digits, '-', '_', '.', '+', at most 127, and not '.' or '..'")
	errBadUUID   = errors.New("bad uuid: use letters, digits and '#+-.:=@_', at most 128")
	errUUIDInUse = errors.New("uuid already in use")
)

// nameRE is the device names gdm accepts: dmsetup's whitelist less the
// characters that are awkward in URIs, paths and metric labels.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]{1,127}$`)

// uuidRE is libdevmapper's whitelist of characters that need no mangling,
// within dm's 128-byte uuid limit (DM_UUID_LEN less the NUL).
var uuidRE = regexp.MustCompile(`^[A-Za-z0-9#+\-.:=@_]{1,128}$`)

// checkName refuses names that cannot be addressed: '.' and '..' would be
// path components in the control API's URLs (and are refused by dm too).
func checkName(name string) error {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", errBadName, truncate(name, 64))
	}
	return nil
}

// checkUUID refuses uuids dmsetup would refuse or mangle; "" asks for a
// generated one.
func checkUUID(uuid string) error {
	if uuid != "" && !uuidRE.MatchString(uuid) {
		return fmt.Errorf("%w: %q", errBadUUID, truncate(uuid, 64))
	}
	return nil
}

// truncate keeps an error message about a hostile string short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
