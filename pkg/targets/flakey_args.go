package targets

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Errors a flakey line can be refused with, besides the package's
// number and count errors. Each is wrapped with dm's reason.
var (
	// ErrFlakeyInterval: up + down is zero, or does not fit 32 bits.
	ErrFlakeyInterval = errors.New("bad flakey interval")
	// ErrFlakeyFeature: an unknown, duplicated or incomplete feature.
	ErrFlakeyFeature = errors.New("bad flakey feature")
	// ErrFlakeyConflict: two features that cannot be combined.
	ErrFlakeyConflict = errors.New("conflicting flakey features")
)

const (
	// flakeyMaxFeatureArgs is the most words dm's feature group takes (11
	// since random_*_corrupt; 6.1 took at most 6 and knew fewer features).
	flakeyMaxFeatureArgs = 11
	// flakeyProbabilityBase is 100% for random_*_corrupt, as in dm.
	flakeyProbabilityBase = 1_000_000_000
)

// flakeyConfig is one flakey line's arguments, parsed. Zero fields are
// features that are off; corruptByte counts from 1.
type flakeyConfig struct {
	path                    string
	offset                  uint64 // sectors
	up, down                uint32 // seconds
	errorReads              bool
	dropWrites, errorWrites bool
	corruptByte             uint32
	corruptWrite            bool // direction w; r otherwise
	corruptValue            uint8
	corruptFlags            uint32
	randomRead, randomWrite uint32 // out of flakeyProbabilityBase
}

func checkFlakey(args []string, sectors uint64) ([]string, error) {
	c, err := parseFlakey(args, sectors)
	if err != nil {
		return nil, err
	}
	return c.canonical(), nil
}

// parseFlakey does dm-flakey's ctr checks in its order: `<dev> <offset>
// <up> <down> [<#feature args> <feature>...]`. Words after the feature
// group are ignored, as dm ignores them.
func parseFlakey(args []string, sectors uint64) (flakeyConfig, error) {
	var c flakeyConfig
	if len(args) < 4 {
		return c, fmt.Errorf("%w: flakey takes at least 4, got %d", ErrArgCount, len(args))
	}
	// <dev> <offset> are linear's, with linear's checks.
	if _, err := checkLinear(args[:2], sectors); err != nil {
		return c, fmt.Errorf("flakey: %w", err)
	}
	c.path = args[0]
	c.offset, _ = ParseNumber(args[1])
	var err error
	if c.up, err = parseUint32(args[2], "up interval", math.MaxUint32); err != nil {
		return c, err
	}
	if c.down, err = parseUint32(args[3], "down interval", math.MaxUint32); err != nil {
		return c, err
	}
	// dm adds them in 32 bits: a sum of exactly 2^32 wraps to zero.
	if sum := c.up + c.down; sum == 0 {
		return c, fmt.Errorf("%w: total (up + down) interval is zero", ErrFlakeyInterval)
	} else if sum < c.up {
		return c, fmt.Errorf("%w: interval overflow (up + down > %d)", ErrFlakeyInterval, uint32(math.MaxUint32))
	}
	if err := c.parseFeatures(args[4:]); err != nil {
		return c, err
	}
	return c, c.checkConflicts()
}

// parseUint32 reads a number dm reads with dm_read_arg: decimal, at most
// max. (dm's sscanf would silently truncate a number above 2^32-1; gdm
// refuses it instead.)
func parseUint32(s, what string, max uint64) (uint32, error) {
	n, err := ParseNumber(s)
	if err != nil {
		return 0, fmt.Errorf("flakey: invalid %s: %w", what, err)
	}
	if n > max {
		return 0, fmt.Errorf("flakey: invalid %s: %w: %d > %d", what, ErrOverflow, n, max)
	}
	return uint32(n), nil
}

// parseFeatures reads the optional feature group: its word count, then
// the features, names compared without case as dm does.
func (c *flakeyConfig) parseFeatures(rest []string) error {
	if len(rest) == 0 {
		return nil
	}
	n, err := parseUint32(rest[0], "number of feature args", flakeyMaxFeatureArgs)
	if err != nil {
		return err
	}
	if int(n) > len(rest)-1 {
		return fmt.Errorf("%w: flakey: %d feature args announced, %d given", ErrArgCount, n, len(rest)-1)
	}
	words := rest[1 : 1+n]
	for len(words) > 0 {
		name := strings.ToLower(words[0])
		words = words[1:]
		if words, err = c.parseFeature(name, words); err != nil {
			return err
		}
	}
	return nil
}

// parseFeature applies one feature and returns the words after its
// parameters.
func (c *flakeyConfig) parseFeature(name string, words []string) ([]string, error) {
	var err error
	switch name {
	case "error_reads":
		err = setOnce(&c.errorReads, name)
	case "drop_writes":
		err = setOnce(&c.dropWrites, name)
		if err == nil && c.errorWrites {
			err = fmt.Errorf("%w: drop_writes with error_writes", ErrFlakeyConflict)
		}
	case "error_writes":
		err = setOnce(&c.errorWrites, name)
		if err == nil && c.dropWrites {
			err = fmt.Errorf("%w: error_writes with drop_writes", ErrFlakeyConflict)
		}
	case "corrupt_bio_byte":
		return c.parseCorruptByte(words)
	case "random_read_corrupt":
		return parseProbability(&c.randomRead, name, words)
	case "random_write_corrupt":
		return parseProbability(&c.randomWrite, name, words)
	default:
		err = fmt.Errorf("%w: unrecognised flakey feature %q", ErrFlakeyFeature, name)
	}
	return words, err
}

func setOnce(flag *bool, name string) error {
	if *flag {
		return fmt.Errorf("%w: feature %s duplicated", ErrFlakeyFeature, name)
	}
	*flag = true
	return nil
}

// parseCorruptByte reads `<Nth byte> <r|w> <value> <flags>`.
func (c *flakeyConfig) parseCorruptByte(words []string) ([]string, error) {
	if c.corruptByte != 0 {
		return nil, fmt.Errorf("%w: feature corrupt_bio_byte duplicated", ErrFlakeyFeature)
	}
	if len(words) < 4 {
		return nil, fmt.Errorf("%w: feature corrupt_bio_byte requires 4 parameters", ErrFlakeyFeature)
	}
	nth, err := parseUint32(words[0], "corrupt bio byte", math.MaxUint32)
	if err != nil {
		return nil, err
	}
	if nth == 0 {
		return nil, fmt.Errorf("%w: invalid corrupt bio byte 0 (bytes count from 1)", ErrFlakeyFeature)
	}
	switch strings.ToLower(words[1]) {
	case "w":
		c.corruptWrite = true
	case "r":
	default:
		return nil, fmt.Errorf("%w: invalid corrupt bio direction %q (r or w)", ErrFlakeyFeature, words[1])
	}
	value, err := parseUint32(words[2], "corrupt value to write into bio byte (0-255)", math.MaxUint8)
	if err != nil {
		return nil, err
	}
	flags, err := parseUint32(words[3], "corrupt bio flags mask", math.MaxUint32)
	if err != nil {
		return nil, err
	}
	c.corruptByte, c.corruptValue, c.corruptFlags = nth, uint8(value), flags
	return words[4:], nil
}

// parseProbability reads random_*_corrupt's parameter. A probability of 0
// is accepted and means the feature is off (it may then be given again).
func parseProbability(p *uint32, name string, words []string) ([]string, error) {
	if *p != 0 {
		return nil, fmt.Errorf("%w: feature %s duplicated", ErrFlakeyFeature, name)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: feature %s requires a parameter", ErrFlakeyFeature, name)
	}
	v, err := parseUint32(words[0], "random corrupt argument", flakeyProbabilityBase)
	if err != nil {
		return nil, err
	}
	*p = v
	return words[1:], nil
}

// checkConflicts refuses what dm refuses after the features are read: a
// write-side feature that would drop or fail the writes another corrupts,
// and error_reads with read corruption.
func (c *flakeyConfig) checkConflicts() error {
	corruptsWrites := (c.corruptByte != 0 && c.corruptWrite) || c.randomWrite != 0
	corruptsReads := (c.corruptByte != 0 && !c.corruptWrite) || c.randomRead != 0
	switch {
	case c.dropWrites && corruptsWrites:
		return fmt.Errorf("%w: drop_writes with random_write_corrupt or corrupt_bio_byte w", ErrFlakeyConflict)
	case c.errorWrites && corruptsWrites:
		return fmt.Errorf("%w: error_writes with random_write_corrupt or corrupt_bio_byte w", ErrFlakeyConflict)
	case c.errorReads && corruptsReads:
		return fmt.Errorf("%w: error_reads with random_read_corrupt or corrupt_bio_byte r", ErrFlakeyConflict)
	}
	return nil
}

// canonical is the line as dm's TABLE status prints it: the four
// mandatory args, the feature word count (always, 0 included), then the
// features in dm's order. (6.1 ends its line with a space; newer kernels
// do not, and neither does gdm.)
func (c *flakeyConfig) canonical() []string {
	u := func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
	out := []string{c.path, strconv.FormatUint(c.offset, 10), u(c.up), u(c.down), ""}
	if c.errorReads {
		out = append(out, "error_reads")
	}
	if c.dropWrites {
		out = append(out, "drop_writes")
	} else if c.errorWrites {
		out = append(out, "error_writes")
	}
	if c.corruptByte != 0 {
		dir := "r"
		if c.corruptWrite {
			dir = "w"
		}
		out = append(out, "corrupt_bio_byte", u(c.corruptByte), dir, u(uint32(c.corruptValue)), u(c.corruptFlags))
	}
	if c.randomRead != 0 {
		out = append(out, "random_read_corrupt", u(c.randomRead))
	}
	if c.randomWrite != 0 {
		out = append(out, "random_write_corrupt", u(c.randomWrite))
	}
	out[4] = strconv.Itoa(len(out) - 5)
	return out
}
