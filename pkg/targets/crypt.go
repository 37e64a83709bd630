package targets

import (
	"strings"
	"sync"
	"sync/atomic"
)

// crypt is dm-crypt: the target's range, encrypted, on one device at an
// offset: `crypt <cipher> <key> <iv_offset> <dev> <offset> [<#opts> <opt>...]`
// (Documentation/admin-guide/device-mapper/dm-crypt.rst). gdm has AES in
// XTS (plain, plain64) and CBC (plain, plain64, essiv:sha256), keys in hex,
// and dm 6.1's optional parameters but integrity; a table it cannot serve
// is refused, never served differently.
//
// Each crypt sector (sector_size bytes, 512 by default) is encrypted on
// its own with an IV made from its number: the 512-byte sector counted from
// the target's start plus iv_offset, or, with iv_large_sectors, that
// number divided by sector_size/512.
//
// Keys. The table keeps each line's canonical args, key included: that is
// what `gdm table --showkeys` prints and the state directory saves (its
// files are 0600 in a 0700 directory). Status(StatusTable) gives the line
// with the key as zeros of the same length, which is what `dmsetup table`
// prints: the kernel's status does print the key, and it is dmsetup that
// overwrites it unless --showkeys. Destroy wipes what the target holds
// itself (the AES key schedules). What it cannot wipe: the table's text
// and the args it was built from (Go strings, immutable, owned by the
// table and the daemon), and copies the Go runtime made and freed (a
// grown buffer, a stack) without clearing; see the README.
//
// dm-crypt's messages `key wipe` and `key set <hex>` replace the key
// while the device is suspended (crypt_key.go).
type crypt struct {
	dev        *Dev
	offset     int64 // bytes
	begin      int64 // bytes: where the table puts the target (Place)
	size       int64 // bytes
	ivOffset   uint64
	ivShift    uint   // iv_large_sectors: log2(sector_size/512), else 0
	ivMask     uint64 // plain: the low 32 bits only
	sectorSize int64
	discards   bool
	chain      string // "xts" or "cbc", to build a key set by message
	ivMode     string // "plain", "plain64" or "essiv"
	keyBytes   int    // the key's length: a key set by message must keep it
	// key is the cipher in use. The I/O path loads it; a message replaces
	// it only while the table is suspended, when no I/O runs.
	key   atomic.Pointer[cryptKey]
	table string // the TABLE status: args with the key masked
	// keyMu guards the state of the key messages (crypt_key.go).
	keyMu sync.Mutex
	// suspended: between PostSuspend and Resume, when dm takes key
	// messages (its DM_CRYPT_SUSPENDED).
	suspended bool
	// keyUnset: a key wipe, or a key set that failed to decode, left no
	// valid key, and the table must not resume (dm's DM_CRYPT_KEY_VALID
	// clear).
	keyUnset bool
}

var (
	_ Target    = (*crypt)(nil)
	_ Destroyer = (*crypt)(nil)
)

func init() {
	register(&Type{Name: "crypt", Version: [3]uint32{1, 24, 0}, Check: checkCrypt, New: newCrypt,
		Syntax:  "<cipher> <key hex> <iv_offset> <dev> <offset> [<#opt_params> <opt_params>...]",
		Summary: "encrypts onto <dev> as dm-crypt does (aes-xts-plain64, aes-cbc-essiv:sha256, ...); LUKS payloads open with the master key"})
}

func checkCrypt(args []string, sectors uint64) ([]string, error) {
	a, err := parseCrypt(args, sectors)
	if err != nil {
		return nil, err
	}
	defer a.wipe()
	return a.canonical(a.keyHex()), nil
}

func newCrypt(args []string, sectors uint64, devs *DevSet) (Target, error) {
	a, err := parseCrypt(args, sectors) // canonical, so this cannot fail but for a table built by hand
	if err != nil {
		return nil, err
	}
	defer a.wipe()
	dev, err := openSized(devs, a.dev, a.offset, sectors)
	if err != nil {
		return nil, err
	}
	c := &crypt{
		dev:        dev,
		offset:     int64(a.offset) * SectorSize,
		size:       int64(sectors) * SectorSize,
		ivOffset:   a.ivOffset,
		ivMask:     ^uint64(0),
		sectorSize: int64(a.sectorSize),
		discards:   a.opts.allowDiscards,
		chain:      a.chain,
		ivMode:     a.iv,
		keyBytes:   len(a.key),
		table:      strings.Join(a.canonical(a.maskedKey()), " "),
	}
	if a.iv == "plain" {
		c.ivMask = 1<<32 - 1
	}
	if a.opts.ivLarge {
		for s := a.sectorSize / SectorSize; s > 1; s >>= 1 {
			c.ivShift++
		}
	}
	k, err := newCryptKey(a)
	if err != nil {
		return nil, err
	}
	c.key.Store(k)
	return c, nil
}

// Status: dm-crypt has no INFO text; its TABLE text is the args with the
// key masked (see crypt).
func (c *crypt) Status(typ StatusType) string {
	if typ == StatusTable {
		return c.table
	}
	return ""
}

// HidesSecret says the TABLE status hides the key (SecretHider).
func (c *crypt) HidesSecret() {}

// LogicalBlockSize is the smallest I/O the target takes, sector_size: the
// logical block size dm gives a device with this target (its io_hints),
// which the NBD layer should advertise as the minimum block size.
func (c *crypt) LogicalBlockSize() int { return int(c.sectorSize) }

var (
	_ BlockSizer  = (*crypt)(nil)
	_ Discarder   = (*crypt)(nil)
	_ SecretHider = (*crypt)(nil)
	_ Placer      = (*crypt)(nil)
)

// Place takes the sector the table starts the target at: I/O must be
// whole crypt sectors of the mapped device (see aligned), and a target
// may start inside one when the table splits a block between targets.
func (c *crypt) Place(begin uint64) { c.begin = int64(begin) * SectorSize }

// SupportsDiscard is allow_discards: without it dm's device has no
// discard support at all.
func (c *crypt) SupportsDiscard() bool { return c.discards }

// Destroy wipes the expanded keys (see wipeBlock). It runs after the last
// I/O, so nothing uses them again.
func (c *crypt) Destroy() error {
	if k := c.key.Swap(nil); k != nil {
		k.wipe()
	}
	return nil
}

// ivNumber is the IV number of the crypt sector at byte off of the target.
func (c *crypt) ivNumber(off int64) uint64 {
	return ((uint64(off)/SectorSize + c.ivOffset) >> c.ivShift) & c.ivMask
}
