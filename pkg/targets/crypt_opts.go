package targets

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// parseOpts reads `[<#opts> <opt>...]`, dm 6.1's optional parameters.
// Flags are matched without regard to case, as dm does; sector_size and
// integrity are not.
func (a *cryptArgs) parseOpts(rest []string, sectors uint64) error {
	if len(rest) == 0 {
		return nil
	}
	n, err := ParseNumber(rest[0]) // dm 6.1 refuses a '+' here (the oracle saw EINVAL)
	if err != nil {
		return fmt.Errorf("number of optional parameters: %w", err)
	}
	if n > cryptMaxOpts {
		return fmt.Errorf("%w: %d optional parameters, at most %d", ErrCryptOption, n, cryptMaxOpts)
	}
	if n != uint64(len(rest)-1) {
		return fmt.Errorf("%w: %d optional parameters announced, %d given", ErrArgCount, n, len(rest)-1)
	}
	for _, opt := range rest[1:] {
		if err := a.parseOpt(opt, sectors); err != nil {
			return err
		}
	}
	return nil
}

// cryptFlags maps each flag option to its field.
var cryptFlags = map[string]func(*cryptOpts) *bool{
	"allow_discards":         func(o *cryptOpts) *bool { return &o.allowDiscards },
	"same_cpu_crypt":         func(o *cryptOpts) *bool { return &o.sameCPU },
	"submit_from_crypt_cpus": func(o *cryptOpts) *bool { return &o.submitFromCrypt },
	"no_read_workqueue":      func(o *cryptOpts) *bool { return &o.noReadWQ },
	"no_write_workqueue":     func(o *cryptOpts) *bool { return &o.noWriteWQ },
	"iv_large_sectors":       func(o *cryptOpts) *bool { return &o.ivLarge },
}

func (a *cryptArgs) parseOpt(opt string, sectors uint64) error {
	if field, ok := cryptFlags[strings.ToLower(opt)]; ok {
		*field(&a.opts) = true
		return nil
	}
	if v, ok := strings.CutPrefix(opt, "sector_size:"); ok {
		return a.parseSectorSize(v, sectors)
	}
	if strings.HasPrefix(opt, "integrity:") {
		return fmt.Errorf("%w: %q: integrity (authenticated encryption over dm-integrity) is not supported", ErrCryptOption, opt)
	}
	return fmt.Errorf("%w: %q is not one of allow_discards, same_cpu_crypt, submit_from_crypt_cpus, no_read_workqueue, no_write_workqueue, sector_size:<bytes>, iv_large_sectors", ErrCryptOption, opt)
}

// parseSectorSize reads sector_size:<bytes>: a power of two from 512 to
// 4096 that divides the target's length.
func (a *cryptArgs) parseSectorSize(v string, sectors uint64) error {
	n, err := ParseNumber(v)
	if err != nil || n < SectorSize || n > 4096 || n&(n-1) != 0 {
		return fmt.Errorf("%w: sector_size:%s: must be a power of two from 512 to 4096", ErrCryptOption, v)
	}
	if sectors%(n/SectorSize) != 0 {
		return fmt.Errorf("%w: %d sectors, sector_size %d", ErrCryptLength, sectors, n)
	}
	a.sectorSize = n
	return nil
}

// optStrings are the optional parameters in dm's canonical order (the
// order its status prints them in), without their count; a sector_size
// of 512, the default, is left out as dm leaves it out.
func (a *cryptArgs) optStrings() []string {
	var out []string
	o := &a.opts
	for _, f := range []struct {
		on   bool
		name string
	}{
		{o.allowDiscards, "allow_discards"}, {o.sameCPU, "same_cpu_crypt"},
		{o.submitFromCrypt, "submit_from_crypt_cpus"}, {o.noReadWQ, "no_read_workqueue"},
		{o.noWriteWQ, "no_write_workqueue"},
	} {
		if f.on {
			out = append(out, f.name)
		}
	}
	if a.sectorSize != SectorSize {
		out = append(out, "sector_size:"+strconv.FormatUint(a.sectorSize, 10))
	}
	if o.ivLarge {
		out = append(out, "iv_large_sectors")
	}
	return out
}

// canonical is the line's args as dm prints them, the key given as keyText:
// the key in lower-case hex (what the table keeps, and `dmsetup table
// --showkeys` shows), or zeros of its length (what `dmsetup table` shows).
func (a *cryptArgs) canonical(keyText string) []string {
	out := []string{a.cipher, keyText, strconv.FormatUint(a.ivOffset, 10), a.dev, strconv.FormatUint(a.offset, 10)}
	if opts := a.optStrings(); len(opts) > 0 {
		out = append(append(out, strconv.Itoa(len(opts))), opts...)
	}
	return out
}

// keyHex is the key in lower-case hex, as dm prints it.
func (a *cryptArgs) keyHex() string { return hex.EncodeToString(a.key) }

// maskedKey is what dmsetup prints in the key's place without --showkeys:
// a zero for each character.
func (a *cryptArgs) maskedKey() string { return strings.Repeat("0", a.keyHexLen) }
