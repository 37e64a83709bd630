package targets

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors a crypt table line can be refused with, besides the package's
// common ones (ErrArgCount, ErrNotNumber, ...). None of their messages
// ever quotes the key.
var (
	ErrCryptCipher  = errors.New("unsupported cipher")
	ErrCryptKey     = errors.New("bad key")
	ErrCryptOption  = errors.New("bad optional parameter")
	ErrCryptIVAlign = errors.New("iv_offset not a multiple of sector_size")
	ErrCryptLength  = errors.New("length not a multiple of sector_size")
	ErrCryptStart   = errors.New("offset not aligned to sector_size")
)

// cryptMaxOpts is dm's bound on the number of optional parameters.
const cryptMaxOpts = 8

// cryptArgs is one crypt line, parsed. key is the decoded key: whoever
// holds a cryptArgs wipes key when done with it.
type cryptArgs struct {
	cipher     string // as written: dm prints the cipher string it was given
	chain      string // "xts" or "cbc"
	iv         string // "plain", "plain64" or "essiv"
	key        []byte
	keyHexLen  int
	ivOffset   uint64 // 512-byte sectors
	dev        string
	offset     uint64 // 512-byte sectors
	sectorSize uint64 // bytes: 512 to 4096
	opts       cryptOpts
}

// cryptOpts are the flags among the optional parameters. Only
// allow_discards and iv_large_sectors change what gdm does; the others
// steer dm's work queues and CPUs, which gdm does not have (each request
// is encrypted on its own goroutine), so they are kept only to be printed.
type cryptOpts struct {
	allowDiscards, sameCPU, submitFromCrypt, noReadWQ, noWriteWQ, ivLarge bool
}

// parseCrypt checks the args of a crypt line of the given length:
// `<cipher> <key> <iv_offset> <dev> <offset> [<#opts> <opt>...]`.
func parseCrypt(args []string, sectors uint64) (*cryptArgs, error) {
	if len(args) < 5 {
		return nil, fmt.Errorf("%w: crypt takes at least 5, got %d", ErrArgCount, len(args))
	}
	a := &cryptArgs{cipher: args[0], dev: args[3], sectorSize: SectorSize}
	if err := a.parseOpts(args[5:], sectors); err != nil {
		return nil, err
	}
	if err := a.parseCipher(args[0]); err != nil {
		return nil, err
	}
	if err := a.parseKey(args[1]); err != nil {
		return nil, err
	}
	if err := a.parseRest(args[2], args[4], sectors); err != nil {
		a.wipe()
		return nil, err
	}
	return a, nil
}

// parseCipher reads dm's legacy form cipher[:keycount]-chainmode-ivmode[:ivopts]
// for the AES modes gdm has; the capi: form and other ciphers are refused.
// The key count is read as dm reads it, a number (sscanf's %u: "01" is
// 1, "" is none); ivopts matter to essiv only, and dm ignores them after
// plain and plain64 ("aes-xts-plain64:sha256" is aes-xts-plain64).
func (a *cryptArgs) parseCipher(spec string) error {
	if strings.HasPrefix(spec, "capi:") {
		return fmt.Errorf("%w: the capi: form is not supported; use e.g. aes-xts-plain64", ErrCryptCipher)
	}
	parts := strings.SplitN(spec, "-", 3)
	name, count, hasCount := strings.Cut(parts[0], ":")
	if name != "aes" {
		return fmt.Errorf("%w: %q: only aes is supported", ErrCryptCipher, name)
	}
	if n, err := ParseNumber(count); hasCount && (err != nil || n != 1) {
		return fmt.Errorf("%w: key count %q: only one key is supported", ErrCryptCipher, count)
	}
	// dm's compatibility rule: "aes" alone, or "aes-plain", is aes-cbc-plain.
	if len(parts) == 1 || (len(parts) == 2 && parts[1] == "plain") {
		a.chain, a.iv = "cbc", "plain"
		return nil
	}
	if len(parts) == 2 {
		return fmt.Errorf("%w: %q: an IV mode is required (e.g. aes-xts-plain64)", ErrCryptCipher, spec)
	}
	a.chain = parts[1]
	iv, ivopts, hasOpts := strings.Cut(parts[2], ":")
	a.iv = iv
	switch {
	case a.chain != "xts" && a.chain != "cbc":
		return fmt.Errorf("%w: chain mode %q: only xts and cbc are supported", ErrCryptCipher, a.chain)
	case iv == "essiv" && !hasOpts:
		return fmt.Errorf("%w: %q: digest algorithm missing for ESSIV mode", ErrCryptCipher, spec)
	case iv == "essiv" && a.chain == "cbc" && ivopts == "sha256":
		return nil
	case iv == "essiv":
		return fmt.Errorf("%w: %q: only cbc-essiv:sha256 is supported", ErrCryptCipher, spec)
	case iv != "plain" && iv != "plain64":
		return fmt.Errorf("%w: IV mode %q: only plain, plain64 and essiv:sha256 are supported", ErrCryptCipher, iv)
	}
	return nil
}

// keySizes are the key lengths (bytes) each chain mode takes: AES-128, -192
// and -256, twice over for XTS (a data key and a tweak key).
var keySizes = map[string][]int{"xts": {32, 48, 64}, "cbc": {16, 24, 32}}

// parseKey decodes the hex key. dm also takes "-" (no key, for ciphers
// without one) and a kernel keyring reference; gdm has neither.
func (a *cryptArgs) parseKey(s string) error {
	switch {
	case strings.HasPrefix(s, ":"):
		return fmt.Errorf("%w: kernel keyring keys (:<key_size>:<key_type>:<key_desc>) are not supported: gdm runs in user space, away from the kernel keyring; give the key in hex", ErrCryptKey)
	case s == "-":
		return fmt.Errorf("%w: \"-\" (no key) is only for ciphers without a key; %s needs one", ErrCryptKey, a.cipher)
	case len(s)%2 != 0:
		return fmt.Errorf("%w: %d hex digits: a key is whole bytes, an even number of digits", ErrCryptKey, len(s))
	}
	key, ok := decodeHex(s)
	if !ok {
		return fmt.Errorf("%w: not hexadecimal", ErrCryptKey)
	}
	ok = false
	for _, n := range keySizes[a.chain] {
		ok = ok || len(key) == n
	}
	if !ok {
		clear(key)
		return fmt.Errorf("%w: %d bits: %s takes %s", ErrCryptKey, 8*len(key), a.chain, bitSizes(keySizes[a.chain]))
	}
	a.key, a.keyHexLen = key, len(s)
	return nil
}

// decodeHex decodes s straight from the string: hex.Decode would want a
// []byte copy of it, one more copy of the key left on the heap.
func decodeHex(s string) ([]byte, bool) {
	key := make([]byte, len(s)/2)
	for i := range key {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			clear(key)
			return nil, false
		}
		key[i] = hi<<4 | lo
	}
	return key, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func bitSizes(bytes []int) string {
	var s []string
	for _, b := range bytes {
		s = append(s, strconv.Itoa(8*b))
	}
	return strings.Join(s, ", ") + " bits"
}

// parseRest reads iv_offset, the device and its offset.
func (a *cryptArgs) parseRest(ivOff, off string, sectors uint64) error {
	var err error
	if a.ivOffset, err = ParseNumber(ivOff); err != nil {
		return fmt.Errorf("iv_offset: %w", err)
	}
	if a.ivOffset%(a.sectorSize/SectorSize) != 0 {
		return fmt.Errorf("%w: iv_offset %d, sector_size %d", ErrCryptIVAlign, a.ivOffset, a.sectorSize)
	}
	if a.dev == "" {
		return ErrEmptyPath
	}
	if a.offset, err = ParseNumber(off); err != nil {
		return fmt.Errorf("offset: %w", err)
	}
	if _, err := sectorsToBytes(a.offset + sectors); err != nil || a.offset+sectors < a.offset {
		return fmt.Errorf("offset+length: %w", ErrOverflow)
	}
	// dm's table checks each target's area on its device against the
	// target's logical block size (crypt's io_hints: sector_size) and
	// refuses the table, in the kernel log's words below.
	if a.offset%(a.sectorSize/SectorSize) != 0 {
		return fmt.Errorf("%w: start=%d not aligned to h/w logical block size %d of %s",
			ErrCryptStart, a.offset, a.sectorSize, a.dev)
	}
	return nil
}

// wipe zeroes the decoded key.
func (a *cryptArgs) wipe() { clear(a.key) }
