package targets

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// dust is dm-dust: a linear mapping that, once enabled by message, fails
// reads of blocks on a bad-block list, the way a disk with unreadable
// sectors does, while writes to those blocks "remap" them (take them off
// the list): `dust <dev> <offset> <block size>`, the block size in bytes.
// The list and the two modes live in memory only, as in dm: a new table (a
// reload, a daemon restart) starts with an empty list, in bypass mode.
//
// Block numbers count blocks of the backing device from its start, not of
// the target: dm shifts the device sector (offset included) to find the
// block, and checks message block numbers against the device's size.
type dust struct {
	Base
	dev       *Dev
	offset    int64  // bytes: where the data area starts on dev
	blkShift  uint   // log2 of the block size in bytes
	devBlocks uint64 // dev's size in blocks: the largest block number a message may name (dm takes it too)
	begin     uint64 // sectors: where the table starts the target (dm's ti->begin; see FlushRequest)

	// enabled is dm's fail_read_on_bb ("enable"/"disable"). quietToggles
	// counts "quiet" messages, each of which toggles dm's quiet_mode: quiet
	// when odd (a count, so that two at once both count). In dm quiet only
	// silences the kernel log; gdm's targets have no log, so it only shows
	// in the status.
	enabled      atomic.Bool
	quietToggles atomic.Uint32

	bad    badBlocks
	faults FaultStats
}

var (
	_ Target         = (*dust)(nil)
	_ Messenger      = (*dust)(nil)
	_ FaultCounter   = (*dust)(nil)
	_ Placer         = (*dust)(nil)
	_ FlushRequester = (*dust)(nil)
)

// ErrBlockSize is a dust line whose block size dm's constructor refuses;
// the wrapped text is dm's.
var ErrBlockSize = errors.New("invalid block size")

// ErrBadBlock answers a read of a block on an enabled dust target's list,
// and a write to a block the list says fails its next writes.
var ErrBadBlock = fmt.Errorf("targets: dust: bad block: %w", syscall.EIO)

// dustMaxBlockSectors is dm-dust's largest block size: 1 GiB in sectors.
const dustMaxBlockSectors = 1 << 21

func init() {
	register(&Type{Name: "dust", Version: [3]uint32{1, 0, 0}, Check: checkDust, New: newDust,
		Syntax:  "<dev> <offset> <block size>",
		Summary: "linear, but reads of blocks on its bad-block list fail once enabled (gdm message: addbadblock, enable, ...)"})
}

// checkDust validates a dust line in dm's order (argument count, block
// size, then the device and offset as linear checks them), with dm's
// words for the block size.
func checkDust(args []string, sectors uint64) ([]string, error) {
	if err := checkArgCount("dust", args, 3); err != nil {
		return nil, err
	}
	blksz, err := dustBlockSize(args[2], sectors)
	if err != nil {
		return nil, err
	}
	devOff, err := checkLinear(args[:2:2], sectors)
	if err != nil {
		return nil, err
	}
	return append(devOff, strconv.FormatUint(blksz, 10)), nil
}

// dustBlockSize parses a block size as dm's kstrtouint does (one leading
// '+' allowed, at most 32 bits) and applies its rules: at least 512, a
// power of two, no larger than 1 GiB nor than the target.
func dustBlockSize(s string, sectors uint64) (uint64, error) {
	blksz, err := ParseNumber(strings.TrimPrefix(s, "+"))
	switch {
	case err != nil || blksz == 0 || blksz > 1<<32-1:
		return 0, fmt.Errorf("%w %q: Invalid block size parameter", ErrBlockSize, s)
	case blksz < SectorSize:
		return 0, fmt.Errorf("%w %d: Block size must be at least 512", ErrBlockSize, blksz)
	case blksz&(blksz-1) != 0:
		return 0, fmt.Errorf("%w %d: Block size must be a power of 2", ErrBlockSize, blksz)
	case blksz/SectorSize > min(sectors, dustMaxBlockSectors):
		return 0, fmt.Errorf("%w %d: Block size is too large", ErrBlockSize, blksz)
	}
	return blksz, nil
}

func newDust(args []string, sectors uint64, devs *DevSet) (Target, error) {
	off, _ := ParseNumber(args[1]) // checked by checkDust
	blksz, _ := ParseNumber(args[2])
	dev, err := openSized(devs, args[0], off, sectors)
	if err != nil {
		return nil, err
	}
	shift := uint(bits.TrailingZeros64(blksz))
	return &dust{
		dev:       dev,
		offset:    int64(off) * SectorSize,
		blkShift:  shift,
		devBlocks: uint64(dev.Size()/SectorSize) >> (shift - 9),
	}, nil
}

// Status is dm-dust's: INFO "<dev> fail_read_on_bad_block|bypass
// quiet|verbose"; TABLE the line's args (Base's "").
func (d *dust) Status(typ StatusType) string {
	if typ != StatusInfo {
		return ""
	}
	mode, log := "bypass", "verbose"
	if d.enabled.Load() {
		mode = "fail_read_on_bad_block"
	}
	if d.quietToggles.Load()&1 != 0 {
		log = "quiet"
	}
	return d.dev.Path() + " " + mode + " " + log
}

// Faults counts the reads failed on bad blocks (read_error) and the writes
// failed by a block's write-fail count (write_error).
func (d *dust) Faults() *FaultStats { return &d.faults }

// judged is the first and last device block that judge a read of bytes
// [off, off+n) of the target (n > 0). dm-dust's max_io_len is its block
// size, so dm splits I/O into pieces at multiples of the block size
// counted from the target's start, and dust_map judges each piece by the
// device block of its first sector. With an offset that is a multiple of
// the block size, those are all the blocks the request touches; with
// another, a piece straddles two device blocks and only the first counts:
// the request's first piece is judged by the block its start falls in,
// each further piece by the block one past the previous piece's.
func (d *dust) judged(off, n int64) (first, last uint64) {
	first = uint64(d.offset+off) >> d.blkShift
	last = uint64(d.offset)>>d.blkShift + uint64(off+n-1)>>d.blkShift
	return first, max(first, last)
}

// nextPiece is where the piece of the target starting at off ends, at
// most end (see judged), and the device block that judges it.
func (d *dust) nextPiece(off, end int64) (next int64, block uint64) {
	bs := int64(1) << d.blkShift
	return min(end, (off/bs+1)*bs), uint64(d.offset+off) >> d.blkShift
}
