package targets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// snapshot is dm's snapshot target: `snapshot <origin> <COW device>
// <P|N|PO> <chunk size> [<#feature args> [discard_zeroes_cow]
// [discard_passdown_origin]]`. It reads as the origin did when the snapshot
// became active, and takes writes of its own; both live in the COW device
// as exceptions (origin chunk -> COW chunk), kept by a cowStore. Origin
// writes reach it through the origin registry (snaporigin.go).
type snapshot struct {
	Base
	origin, cow *Dev
	paths       [2]string // origin and COW as the line names them, for the TABLE status
	entry       *originEntry
	store       atomic.Pointer[cowStore] // replaced only at a resume (reread or handed over), before I/O
	devs        *DevSet                  // its table's: where its events go
	sectors     uint64
	overflowOK  bool // PO
	zeroesCow   bool // discard_zeroes_cow
	passdown    bool // discard_passdown_origin
	// merging: a snapshot-merge's (snapmerge.go). Origin writes make no
	// exceptions in it: it is being deleted, its chunks going back.
	merging bool
	// handedOver: a newer table's snapshot over the same COW took the
	// exceptions; this one answers I/O with errors from then on, as dm's
	// handover leaves its source invalid.
	handedOver atomic.Bool
	copied     atomic.Uint64 // origin chunks copied to the COW (COW faults)

	// attached: origin writes copy to this snapshot. Changed only under
	// entry.mu; read without it by detach, which needs no lock for a
	// snapshot that is not attached (see there).
	attached atomic.Bool
	// loadGen is entry.gen as it was before store was read from the COW
	// device (see originEntry.gen). Used by New, PreResume and Resume,
	// which the device's lock keeps apart.
	loadGen uint64

	beforeOriginRead func() // tests only: a read of the origin is about to start
	beforeCommit     func() // tests only: a write's new exceptions are about to be committed
}

var (
	_ Target    = (*snapshot)(nil)
	_ Resumer   = (*snapshot)(nil)
	_ Destroyer = (*snapshot)(nil)
	_ Discarder = (*snapshot)(nil)
)

// Errors of a snapshot line.
var (
	ErrSnapStoreType = errors.New("exception store type is not P, PO or N")
	ErrSnapFeature   = errors.New("unknown or inconsistent snapshot feature")
	ErrSnapSameDev   = errors.New("COW device cannot be the same as origin device")
	// ErrSnapChunkBlocks is dm's error for a chunk size that is not
	// whole logical blocks of the origin or the COW device.
	ErrSnapChunkBlocks = errors.New("chunk size is not a multiple of device blocksize")
)

func init() {
	register(&Type{Name: "snapshot", Version: [3]uint32{1, 16, 0}, Check: checkSnapshot, New: newSnapshot, NoLiveSwap: true,
		Syntax:  "<origin> <COW device> <P|N|PO> <chunk size> [<#feature args> [discard_zeroes_cow] [discard_passdown_origin]]",
		Summary: "copy-on-write snapshot of <origin>; P and PO keep the exceptions on <COW device> in dm's format, N in memory"})
}

// checkSnapshot validates a snapshot line and returns it canonical: the
// store type as P, PO or N (snapStoreKind), numbers without leading zeros.
func checkSnapshot(args []string, _ uint64) ([]string, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%w: snapshot takes 4 or more, got %d", ErrArgCount, len(args))
	}
	if args[0] == "" || args[1] == "" {
		return nil, ErrEmptyPath
	}
	if args[0] == args[1] {
		return nil, fmt.Errorf("%w: %s", ErrSnapSameDev, args[0])
	}
	kind, err := snapStoreKind(args[2])
	if err != nil {
		return nil, err
	}
	chunk, err := ParseNumber(args[3])
	if err != nil {
		return nil, fmt.Errorf("chunk size: %w", err)
	}
	if chunk != 0 || kind == "N" {
		if err := validChunkSectors(chunk); err != nil {
			return nil, err
		}
	}
	out := []string{args[0], args[1], kind, strconv.FormatUint(chunk, 10)}
	feats, err := checkSnapFeatures(args[4:])
	if err != nil {
		return nil, err
	}
	return append(out, feats...), nil
}

// snapStoreKind reads a store type as dm does: its first letter, P or N in
// either case, picks the store, and the rest are the store's options, which
// a transient store ignores and a persistent one takes only as O
// (overflow), of which dm looks at the first letter alone: "NO" is N,
// "pox" is PO, "PX" is refused.
func snapStoreKind(arg string) (string, error) {
	k := strings.ToUpper(arg)
	switch {
	case strings.HasPrefix(k, "N"):
		return "N", nil
	case k == "P":
		return "P", nil
	case strings.HasPrefix(k, "PO"):
		return "PO", nil
	}
	return "", fmt.Errorf("%w: %q", ErrSnapStoreType, arg)
}

// checkSnapFeatures checks `<#args> <feature>...`; passdown needs zeroes.
func checkSnapFeatures(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	n, err := ParseNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("feature count: %w", err)
	}
	if n > 2 { // dm reads the group with a bound of 2, repeats or not
		return nil, fmt.Errorf("%w: %d feature args: at most 2", ErrArgCount, n)
	}
	if n != uint64(len(args)-1) {
		return nil, fmt.Errorf("%w: %d feature args announced, %d given", ErrArgCount, n, len(args)-1)
	}
	seen := map[string]bool{}
	feats := make([]string, 0, n)
	for _, f := range args[1:] {
		f = strings.ToLower(f) // dm compares them with strcasecmp
		if f != "discard_zeroes_cow" && f != "discard_passdown_origin" {
			return nil, fmt.Errorf("%w: %q", ErrSnapFeature, f)
		}
		seen[f] = true
		feats = append(feats, f)
	}
	if seen["discard_passdown_origin"] && !seen["discard_zeroes_cow"] {
		return nil, fmt.Errorf("%w: discard_passdown_origin needs discard_zeroes_cow", ErrSnapFeature)
	}
	return append([]string{strconv.FormatUint(n, 10)}, feats...), nil
}

// newSnapshot opens the origin and the COW device and loads the store. The
// snapshot joins its origin's entry now but gets copies only from its
// Resume on, as dm copies only to active snapshots.
func newSnapshot(args []string, sectors uint64, devs *DevSet) (Target, error) {
	origin, err := openSized(devs, args[0], 0, sectors)
	if err != nil {
		return nil, err
	}
	cow, err := devs.Open(args[1])
	if err != nil {
		return nil, err
	}
	if origin.Identity() == cow.Identity() {
		return nil, fmt.Errorf("%w: %s and %s are %s", ErrSnapSameDev, args[0], args[1], cow.Identity())
	}
	// dm's snapshot_iterate_devices lists the COW device too, whole: its
	// blocks count in the target's, and its size must be whole blocks.
	devs.noteArea(cow, 0, uint64(cow.Size()/SectorSize))
	chunk, _ := ParseNumber(args[3]) // checked by checkSnapshot
	kind, err := snapStoreKind(args[2])
	if err != nil {
		return nil, err
	}
	if err := chunkFitsBlocks(chunk, origin, cow); err != nil {
		return nil, err // before a new store's header is written
	}
	entry := acquireOrigin(origin.Identity())
	gen := entry.gen.Load() // before the read: see originEntry.gen
	st, err := openCowStore(cow, kind != "N", chunk)
	if err == nil {
		err = chunkFitsBlocks(uint64(st.lay.chunk/SectorSize), origin, cow) // an existing store's chunk size
	}
	if err != nil {
		entry.release()
		return nil, err
	}
	s := &snapshot{origin: origin, cow: cow, paths: [2]string{args[0], args[1]}, devs: devs,
		entry: entry, loadGen: gen, sectors: sectors, overflowOK: kind == "PO",
		zeroesCow: slices.Contains(args[4:], "discard_zeroes_cow"),
		passdown:  slices.Contains(args[4:], "discard_passdown_origin")}
	s.useStore(st)
	return s, nil
}

// chunkFitsBlocks refuses a chunk size (sectors; 0: the store's, not yet
// known) that is not whole logical blocks of the origin and of the COW
// device, as dm's dm_exception_store_set_chunk_size does, in its words.
func chunkFitsBlocks(chunk uint64, origin, cow *Dev) error {
	for _, d := range []*Dev{cow, origin} {
		if per := uint64(d.LogicalBlockSize() / SectorSize); chunk%per != 0 {
			return fmt.Errorf("%w: chunk %d sectors, %s has blocks of %d bytes",
				ErrSnapChunkBlocks, chunk, d.Path(), d.LogicalBlockSize())
		}
	}
	return nil
}

// PreResume reads the store again if it may be out of date (freshen):
// here, before the swap, a read error refuses the resume and changes
// nothing, where Resume could only make the snapshot invalid.
func (s *snapshot) PreResume(context.Context) error { return s.freshen() }

// Resume makes the snapshot active: origin writes copy to it from now on.
// It stays active through a suspend (dm keeps copying to a suspended
// snapshot, or its view of the origin would change under it) until its
// table is destroyed or a newer table over the same COW takes over.
func (s *snapshot) Resume(context.Context) { s.entry.attach(s) }

// freshen reads a persistent store from the COW device again when a
// snapshot over the same COW left the origin since it was read (a table
// destroyed since this one's New may have added exceptions) and none is
// attached now, whose store attach would take over instead. The read
// takes no lock: origin writes go on meanwhile (see attach).
func (s *snapshot) freshen() error {
	cur := s.store.Load()
	gen := s.entry.gen.Load()
	if s.attached.Load() || !cur.persistent || gen == s.loadGen || s.entry.holdsCow(s.cow) {
		return nil
	}
	st, err := openCowStore(s.cow, true, uint64(cur.lay.chunk/SectorSize))
	if err != nil {
		return err
	}
	s.useStore(st)
	s.loadGen = gen
	return nil
}

// useStore makes st the snapshot's store, its invalidation raising the
// snapshot's table's event, as dm's __invalidate_snapshot does.
func (s *snapshot) useStore(st *cowStore) {
	st.event = s.devs.RaiseEvent
	s.store.Store(st)
}

// Destroy stops the copies to this snapshot and leaves its origin entry.
func (s *snapshot) Destroy() error {
	s.entry.detach(s)
	s.entry.release()
	return nil
}

// Status is dm's: Invalid, Overflow, or `<sectors allocated>/<total
// sectors> <metadata sectors>`; the TABLE form is tableStatus.
func (s *snapshot) Status(typ StatusType) string {
	if typ == StatusTable {
		return s.tableStatus()
	}
	st := s.store.Load()
	valid, over := st.state()
	switch {
	case !valid || s.handedOver.Load():
		return "Invalid"
	case over:
		return "Overflow"
	}
	a, t, m := st.usage()
	return fmt.Sprintf("%d/%d %d", a, t, m)
}

// tableStatus is the line's args as dm's snapshot_status prints them for
// `dmsetup table`, which are not always the args as written: the chunk
// size is the store's, the one in use (a persistent store given 0 takes
// its header's, or 32 sectors when new, and a header's overrides the
// table's), and the features are those set, counted and in dm's order
// (discard_zeroes_cow first, each once), not the words given.
func (s *snapshot) tableStatus() string {
	st := s.store.Load()
	kind := "N"
	if st.persistent {
		kind = "P"
		if s.overflowOK {
			kind = "PO"
		}
	}
	line := fmt.Sprintf("%s %s %s %d", s.paths[0], s.paths[1], kind, st.lay.chunk/SectorSize)
	var feats []string
	if s.zeroesCow {
		feats = append(feats, "discard_zeroes_cow")
	}
	if s.passdown {
		feats = append(feats, "discard_passdown_origin")
	}
	if len(feats) == 0 {
		return line
	}
	return line + " " + strconv.Itoa(len(feats)) + " " + strings.Join(feats, " ")
}
