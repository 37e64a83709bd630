package oracle

import "strings"

// Keys of the crypt cases: test keys, printed in every table. cryptKey128
// is given in upper case once, since dm prints keys in lower case.
const (
	cryptKey128 = "00112233445566778899aabbccddeeff"
	cryptKey256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	cryptKey512 = cryptKey256 + "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe"
)

// CryptCases are dm-crypt's cases: each cipher gdm has (AES-XTS with
// plain64 and plain, AES-CBC with essiv:sha256), 512- and 4096-byte crypt
// sectors, with and without iv_offset and iv_large_sectors, discards
// allowed and not, the no-op options (their order in the table text), and
// a reload. The backing disks start with a pattern, which decrypts to the
// same garbage on both sides when the IVs are right. The guest needs
// dm-crypt.ko (and the crypto modules it loads: xts, essiv, cbc, aes,
// sha256) for these.
func CryptCases() []Case {
	p := Pattern
	return []Case{
		{Name: "crypt-xts-plain64", Seed: 301, Devs: []Init{p(311)},
			Table: "0 16384 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0"},
		{Name: "crypt-xts-plain64-ivoffset-mixed", Seed: 302, Devs: []Init{p(312), p(313)}, Table: `
0 8000 crypt aes-xts-plain64 ` + cryptKey256 + ` 12345 $0 2048
8000 8384 linear $1 0`},
		// IVs count from the crypt target's start, not the device's.
		{Name: "crypt-after-linear", Seed: 311, Devs: []Init{p(323), p(324)}, Table: `
0 4096 linear $0 0
4096 12288 crypt aes-xts-plain64 ` + cryptKey256 + ` 0 $1 1000`},
		// iv_offset just below 2^32: plain's 32-bit IV wraps inside the target.
		{Name: "crypt-xts-plain-wrap", Seed: 303, Devs: []Init{p(314)},
			Table: "0 16384 crypt aes-xts-plain " + cryptKey256 + " 4294963296 $0 0"},
		{Name: "crypt-cbc-essiv-discards", Seed: 304, Devs: []Init{p(315)},
			Table: "0 16000 crypt aes-cbc-essiv:sha256 " + cryptKey256 + " 7 $0 100 1 allow_discards"},
		{Name: "crypt-cbc-essiv-128-noop-opts", Seed: 305, Devs: []Init{p(316)},
			Table: "0 16384 crypt aes-cbc-essiv:sha256 00112233445566778899AABBCCDDEEFF 0 $0 0 " +
				"4 no_write_workqueue no_read_workqueue submit_from_crypt_cpus same_cpu_crypt"},
		{Name: "crypt-xts-4k", Seed: 306, Devs: []Init{p(317)},
			Table:  "0 16384 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0 1 sector_size:4096",
			Script: cryptScript4K(16384 * 512)},
		{Name: "crypt-xts-4k-ivoffset", Seed: 307, Devs: []Init{p(318)},
			Table:  "0 16000 crypt aes-xts-plain64 " + cryptKey256 + " 64 $0 128 1 sector_size:4096",
			Script: cryptScript4K(16000 * 512)},
		{Name: "crypt-xts-4k-large-ivoffset", Seed: 308, Devs: []Init{p(319)},
			Table:  "0 16000 crypt aes-xts-plain64 " + cryptKey256 + " 64 $0 128 2 sector_size:4096 iv_large_sectors",
			Script: cryptScript4K(16000 * 512)},
		{Name: "crypt-cbc-essiv-4k-large", Seed: 309, Devs: []Init{p(320)},
			Table:  "0 16376 crypt aes-cbc-essiv:sha256 " + cryptKey128 + " 16 $0 8 3 allow_discards sector_size:4096 iv_large_sectors",
			Script: cryptScript4K(16376 * 512)},
		{Name: "crypt-reload", Seed: 310, Devs: []Init{p(321), p(322)},
			Table: "0 8192 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0", Script: cryptReloadScript()},
		// A crypt of 4096-byte sectors that starts 7 sectors into the
		// table: dm-crypt checks a bio's alignment on the mapped device,
		// so a block wholly inside the target is served (at target sector
		// 1, IV 1, or 1>>3 with iv_large_sectors), and only the blocks it
		// shares with its neighbours fail (EIO).
		{Name: "crypt-4k-unaligned-begin", Seed: 313, Devs: []Init{p(326), p(327)}, Table: `
0 7 linear $0 0
7 16376 crypt aes-xts-plain64 ` + cryptKey256 + ` 8 $1 8 3 allow_discards sector_size:4096 iv_large_sectors
16383 1 linear $0 100`, Script: cryptUnalignedScript(16384 * 512)},
		{Name: "crypt-key-messages", Seed: 312, Devs: []Init{p(325)},
			Table: "0 8192 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0 1 sector_size:4096", Script: cryptKeyScript()},
	}
}

// cryptKeyScript is cryptsetup's luksSuspend and luksResume and what dm
// refuses around them: key messages while live, a key of another size,
// a resume without a key (after key wipe, and after a key set that does
// not decode), and a key set to another key, which both sides must then
// read and write with.
func cryptKeyScript() []Op {
	other := cryptKey512[64:] + cryptKey512[:64]
	return []Op{
		{Kind: Write, Off: 0, Len: 1 << 20, Seed: 400},
		{Kind: Message, Arg: "key wipe"}, // refused: not suspended
		{Kind: Suspend},
		{Kind: Message, Arg: "key set " + cryptKey256}, // refused: another size
		{Kind: Message, Arg: "key wipe"},
		{Kind: Resume}, // refused: no key
		{Kind: Message, Arg: "key set " + other},
		{Kind: Resume},
		{Kind: Read, Off: 0, Len: 2 << 20},
		{Kind: Write, Off: 1 << 20, Len: 64 << 10, Seed: 401},
		{Kind: Suspend},
		{Kind: Message, Arg: "key set zz" + cryptKey512[2:]}, // refused, and no valid key left
		{Kind: Resume},                                       // refused
		{Kind: Message, Arg: "KEY SET " + strings.ToUpper(cryptKey512)},
		{Kind: Resume},
		{Kind: Read, Off: 0, Len: 2 << 20},
		{Kind: Message, Arg: "key set " + cryptKey512}, // refused: not suspended
	}
}

// cryptScript4K is a script for a table of 4096-byte crypt sectors: its
// data ops are whole crypt sectors (smaller ones the kernel refuses
// before dm sees them, with EINVAL under O_DIRECT), and two are not, to
// see both sides refuse them alike (a buffered device reads and writes
// them through its page cache instead, on both sides).
func cryptScript4K(size int64) []Op {
	const k = 4096
	ops := []Op{
		{Kind: Write, Off: 0, Len: 8 * k, Seed: 1},
		{Kind: Read, Off: 0, Len: 16 * k},
		{Kind: Write, Off: size - 3*k, Len: 3 * k, Seed: 2},
		{Kind: Write, Off: 123 * k, Len: 1 << 20, Seed: 3},
		{Kind: WriteFUA, Off: 77 * k, Len: k, Seed: 4},
		{Kind: Read, Off: 70 * k, Len: 64 * k},
		{Kind: Read, Off: 512, Len: 512},
		{Kind: Write, Off: k + 512, Len: k, Seed: 5},
		{Kind: Discard, Off: 300 * k, Len: 16 * k},
		{Kind: Read, Off: 300 * k, Len: 16 * k},
		{Kind: WriteZeroes, Off: 400 * k, Len: 20 * k},
		{Kind: Read, Off: 398 * k, Len: 24 * k},
		{Kind: Write, Off: 1000 * k, Len: 4 << 20, Seed: 6},
		{Kind: Flush},
	}
	return append(ops, ReadAll(size)...)
}

// cryptUnalignedScript is for a table of 4096-byte logical blocks whose
// crypt target starts and ends inside a block: whole blocks inside the
// target, and the first and last, which it shares with linear targets.
func cryptUnalignedScript(size int64) []Op {
	const k = 4096
	ops := []Op{
		{Kind: Read, Off: 0, Len: 2 * k},
		{Kind: Read, Off: k, Len: 16 * k},
		{Kind: Write, Off: 0, Len: 4 * k, Seed: 1},
		{Kind: Write, Off: k, Len: 8 * k, Seed: 2},
		{Kind: WriteFUA, Off: 100 * k, Len: k, Seed: 3},
		{Kind: Write, Off: size - 2*k, Len: 2 * k, Seed: 4},
		{Kind: Write, Off: size - 3*k, Len: 2 * k, Seed: 5},
		{Kind: WriteZeroes, Off: 200 * k, Len: 20 * k},
		{Kind: WriteZeroes, Off: size - 4*k, Len: 4 * k},
		{Kind: Discard, Off: 300 * k, Len: 16 * k},
		{Kind: Read, Off: 0, Len: 400 * k},
		{Kind: Read, Off: k, Len: 400 * k},
		{Kind: Read, Off: size - k, Len: k},
		{Kind: Read, Off: size - 8*k, Len: 7 * k},
		{Kind: Flush},
	}
	for off := int64(k); off < size-k; off += 1 << 20 {
		ops = append(ops, Op{Kind: Read, Off: off, Len: min(1<<20, size-k-off)})
	}
	return ops
}

// cryptReloadScript writes, suspends and resumes, reloads the device onto
// the other disk with another key and iv_offset, and reads and writes the
// new mapping: the key must come through the reload on both sides.
func cryptReloadScript() []Op {
	return []Op{
		{Kind: Write, Off: 4096, Len: 1 << 20, Seed: 200},
		{Kind: Suspend}, {Kind: Resume},
		{Kind: Read, Off: 0, Len: 2 << 20},
		{Kind: Reload, Arg: "0 8192 crypt aes-xts-plain64 " + cryptKey256 + " 99 $1 77"}, {Kind: Resume},
		{Kind: Read, Off: 0, Len: 4 << 20},
		{Kind: Write, Off: 512, Len: 8192, Seed: 201},
		{Kind: Read, Off: 0, Len: 4 << 20},
	}
}

// CryptAcceptance are crypt lines dm accepts or refuses, where gdm must do
// the same: key sizes, sector_size and the length and iv_offset it must
// divide, the option count (no '+' before it, as dm 6.1 refuses),
// the options' case, options out of
// 6.1, and keys gdm cannot have. Left out on purpose,
// because gdm refuses what dm takes: IV modes gdm lacks (benbi, lmk, ...),
// a key of an odd number of digits (dm drops the last) and words after the
// optional parameters (dm ignores them).
func CryptAcceptance() []Accept {
	yes := func(t string) Accept { return Accept{Table: t, Want: true} }
	no := func(t string) Accept { return Accept{Table: t} }
	xts := func(rest string) string { return "0 16 crypt aes-xts-plain64 " + cryptKey256 + " " + rest }
	return []Accept{
		yes("0 16384 crypt aes-xts-plain64 " + cryptKey512 + " 0 $0 0"),
		no("0 16 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0 0 +1 allow_discards"), // dm 6.1: EINVAL
		yes("0 8 crypt aes-cbc-essiv:sha256 " + cryptKey128 + " 0 $0 16376"),
		yes("0 8 crypt aes " + cryptKey128 + " 0 $0 0"),
		yes("0 8 crypt aes-xts-plain64 " + cryptKey256[:48] + cryptKey256[:48] + " 0 $0 0"), // AES-192, halves equal: no FIPS check in 6.1
		yes(xts("8 $0 0 1 sector_size:4096")),
		yes(xts("0 $0 0 1 ALLOW_DISCARDS")),
		yes(xts("0 $0 0 0")),
		yes(xts("0 $0 0 2 iv_large_sectors sector_size:0512")),
		no("0 12 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0 0 1 sector_size:4096"),
		no(xts("4 $0 0 1 sector_size:4096")),
		no(xts("0 $0 0 1 sector_size:8192")),
		no(xts("0 $0 0 1 sector_size:1000")),
		no(xts("0 $0 0 1 high_priority")),
		no(xts("0 $0 0 1 integrity:28:aead")),
		no(xts("0 $0 0 2 allow_discards")),
		no(xts("0 $0 0 9 allow_discards allow_discards allow_discards allow_discards allow_discards allow_discards allow_discards allow_discards allow_discards")),
		no(xts("+0 $0 0")),
		no(xts("0 $0 16376")),
		no("0 8 crypt aes-xts-plain64 " + cryptKey128 + " 0 $0 0"),
		no("0 8 crypt aes-cbc-essiv:sha256 " + cryptKey512 + " 0 $0 0"),
		no("0 8 crypt aes-xts-plain64 zz" + cryptKey256[2:] + " 0 $0 0"),
		no("0 8 crypt aes-xts-plain64 - 0 $0 0"),
		no("0 8 crypt aes-xts-plain64 :32:logon:gdm-no-such-key 0 $0 0"),
		no("0 8 crypt aes-cbc-essiv " + cryptKey128 + " 0 $0 0"),
		no("0 8 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0"),
		// The table must end on its logical block size; dm splits a block
		// between targets over 512-byte disks. A crypt's area on its disk
		// must be aligned to its sector_size.
		no("0 7 linear $0 0\n7 8 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0 16 1 sector_size:4096"),
		yes("0 7 linear $0 0\n7 8 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0 16 1 sector_size:4096\n15 1 zero"),
		no("0 8 crypt aes-xts-plain64 " + cryptKey256 + " 0 $0 0 1 sector_size:4096\n8 3 zero"),
		no(xts("0 $0 4 1 sector_size:4096")),
		yes(xts("0 $0 6 1 sector_size:1024")),
		// The cipher spec as dm's legacy parser reads it: the key count
		// with sscanf ("01" is 1, "" is none), options after plain and
		// plain64 ignored (and the spec printed as given).
		yes("0 8 crypt aes:01-xts-plain64 " + cryptKey256 + " 0 $0 0"),
		no("0 8 crypt aes:-xts-plain64 " + cryptKey256 + " 0 $0 0"),
		yes("0 8 crypt aes-xts-plain64:sha256 " + cryptKey256 + " 0 $0 0"),
		yes("0 8 crypt aes-cbc-plain:foo " + cryptKey128 + " 0 $0 0"),
		// dm reads sector_size with sscanf's %hu, which wraps past 16
		// bits: 66048 is 512 to dm.
		{Table: xts("0 $0 0 1 sector_size:66048"), Want: true, GdmRefuses: "a sector_size over 16 bits, which dm's sscanf %hu silently wraps"},
	}
}
