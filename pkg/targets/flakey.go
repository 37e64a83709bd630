package targets

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// flakey is dm-flakey: a linear mapping that, for <down> seconds of every
// <up>+<down>, counted from the table's load, fails, drops or corrupts I/O
// as its features say: `flakey <dev> <offset> <up> <down> [<#feature
// args> <feature>...]`. Its TABLE status is its canonical args (Base),
// its INFO status empty, as in dm.
//
// It takes the features of today's dm (error_reads and random_*_corrupt
// came in 6.5; the oracle's 6.1 refuses them) with today's checks, and
// behaves as today's dm does where 6.1 differs: 6.1 never corrupted a
// read (its end_io found the bio already consumed, fixed in 2025) and
// corrupted a write in the submitter's own pages (a clone since 6.5).
type flakey struct {
	Base
	dev    *Dev
	offset int64 // bytes
	cfg    flakeyConfig

	// start and now time the intervals. New sets them from time.Now;
	// tests swap in a clock of their own.
	start time.Time
	now   func() time.Time

	rngMu sync.Mutex // math/rand's generators are not safe for concurrent use
	rng   *rand.Rand // random_*_corrupt's draws; tests seed their own

	faults FaultStats
}

var (
	_ Target       = (*flakey)(nil)
	_ FaultCounter = (*flakey)(nil)
)

// ErrFlakeyDown is what flakey answers an I/O it fails in its down
// interval with: EIO, as dm's kill of the bio.
var ErrFlakeyDown = fmt.Errorf("targets: flakey: down interval: %w", syscall.EIO)

// Bits of the kernel's bio bi_opf that gdm's requests can carry, for
// corrupt_bio_byte's <flags>: a bio matches when all of them are set.
// The op is in the low bits (REQ_OP_READ 0, REQ_OP_WRITE 1), then flags;
// REQ_FUA is bit 17 in 6.1 (and since). gdm's NBD requests carry no other
// flag (no REQ_SYNC, REQ_META...), so only 0, 1 (writes) and FUA
// (131072, FUA writes) select anything here.
const (
	flakeyOpWrite uint32 = 1
	flakeyReqFUA  uint32 = 1 << 17
)

func init() {
	register(&Type{Name: "flakey", Version: [3]uint32{1, 5, 0}, Check: checkFlakey, New: newFlakey,
		Syntax: "<dev> <offset> <up s> <down s> [<#features> [drop_writes|error_writes|error_reads|" +
			"corrupt_bio_byte <Nth> <r|w> <value> <flags>|random_read_corrupt <p>|random_write_corrupt <p>]...]",
		Summary: "linear while up; while down, fails all I/O or applies its features (dm-flakey)"})
}

func newFlakey(args []string, sectors uint64, devs *DevSet) (Target, error) {
	cfg, err := parseFlakey(args, sectors)
	if err != nil {
		return nil, err
	}
	dev, err := openSized(devs, cfg.path, cfg.offset, sectors)
	if err != nil {
		return nil, err
	}
	return &flakey{
		dev:    dev,
		offset: int64(cfg.offset) * SectorSize,
		cfg:    cfg.effective(),
		start:  time.Now(),
		now:    time.Now,
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}, nil
}

// effective is the behaviour a config has: with no feature at all (or
// only random_*_corrupt at 0), every I/O of the down interval fails, which
// dm (6.1 by its map function, newer ones by setting both flags) does as
// error_reads plus error_writes. Its canonical form still says 0, as
// 6.1's TABLE status does (newer kernels print the two flags they set).
func (c flakeyConfig) effective() flakeyConfig {
	if !c.errorReads && !c.dropWrites && !c.errorWrites && c.corruptByte == 0 &&
		c.randomRead == 0 && c.randomWrite == 0 {
		c.errorReads, c.errorWrites = true, true
	}
	return c
}

// isDown says whether the target is in its down interval: dm counts whole
// seconds since the constructor in 32 bits, and is down when that count
// modulo up+down is at least up.
func (f *flakey) isDown() bool {
	if f.cfg.down == 0 {
		return false
	}
	elapsed := max(f.now().Sub(f.start), 0)
	secs := uint32(uint64(elapsed / time.Second))
	return secs%(f.cfg.up+f.cfg.down) >= f.cfg.up
}

// Faults counts the requests flakey failed, dropped or corrupted.
func (f *flakey) Faults() *FaultStats { return &f.faults }

// readMayCorrupt says whether a read of the down interval can have its
// data changed: corrupt_bio_byte r whose flags a read can match (a read's
// bi_opf here is 0), or random_read_corrupt.
func (f *flakey) readMayCorrupt() bool {
	c := &f.cfg
	return (c.corruptByte != 0 && !c.corruptWrite && c.corruptFlags == 0) || c.randomRead != 0
}

// corruptDraw is one random_*_corrupt decision, made as dm makes it: a
// 64-bit draw modulo 10^9 below the probability corrupts; the byte is a
// 32-bit draw modulo the request's length, the value a random byte.
func (f *flakey) corruptDraw(prob uint32, n int) (hit bool, at int, value byte) {
	if prob == 0 || n == 0 {
		return false, 0, 0
	}
	f.rngMu.Lock()
	defer f.rngMu.Unlock()
	if f.rng.Uint64()%flakeyProbabilityBase >= uint64(prob) {
		return false, 0, 0
	}
	return true, int(uint64(f.rng.Uint32()) % uint64(n)), byte(f.rng.Uint32())
}
