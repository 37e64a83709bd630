package targets

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Type is a kind of target: how to check its arguments and how to build one.
type Type struct {
	Name string
	// Syntax is the args of a line of this type as `gdm help` and gdm(8)
	// show them, in dm's documentation's words: "<dev> <offset>".
	Syntax string
	// Summary says in one line what the target does.
	Summary string
	// Version is the version of the kernel's dm target whose behaviour,
	// table syntax, status text and on-disk format this one follows, as
	// `dmsetup targets` prints it there: the guest kernel of the oracle
	// tests (e2e), whose dm agrees with it.
	Version [3]uint32
	// Check validates args for a target of the given length (sectors)
	// without touching any device, and returns them in canonical form.
	Check func(args []string, sectors uint64) ([]string, error)
	// New builds a target from canonical args, opening devices via devs.
	New func(args []string, sectors uint64, devs *DevSet) (Target, error)
	// NoLiveSwap says that two live tables holding this target over the
	// same store would corrupt it (a snapshot's exception store, a log):
	// a table with one refuses `resume --live`, whose old table keeps
	// serving I/O while the new one starts.
	NoLiveSwap bool
}

// types is the registry, copied on write: Lookup runs once per table line
// (a million for a big table) and takes no lock.
var (
	typesMu sync.Mutex // serializes Register
	types   atomic.Pointer[map[string]*Type]
)

// ErrDuplicateType is a Register of a name already taken.
var ErrDuplicateType = errors.New("targets: target type already registered")

func register(t *Type) {
	if err := Register(t); err != nil {
		panic(err)
	}
}

// Register adds a target type, for targets defined outside this package
// (and tests' stub targets). A name can be registered once.
func Register(t *Type) error {
	typesMu.Lock()
	defer typesMu.Unlock()
	next := map[string]*Type{}
	if p := types.Load(); p != nil {
		if _, ok := (*p)[t.Name]; ok {
			return fmt.Errorf("%w: %q", ErrDuplicateType, t.Name)
		}
		maps.Copy(next, *p)
	}
	next[t.Name] = t
	types.Store(&next)
	return nil
}

// registry is the registered types (none before the first Register).
func registry() map[string]*Type {
	if p := types.Load(); p != nil {
		return *p
	}
	return nil
}

// Lookup finds a target type by its table name.
func Lookup(name string) (*Type, error) {
	t, ok := registry()[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, name)
	}
	return t, nil
}

// Types lists the registered target types, sorted by name.
func Types() []*Type {
	all := registry()
	out := make([]*Type, 0, len(all))
	for _, n := range TypeNames() {
		out = append(out, all[n])
	}
	return out
}

// TypeNames lists the registered target types, sorted.
func TypeNames() []string {
	all := registry()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseNumber parses a non-negative decimal number of a table, saying which
// of not-a-number, negative or too-large it is when it is none.
func ParseNumber(s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %q", ErrNegative, s)
		}
		return 0, fmt.Errorf("%w: %q", ErrNotNumber, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%w: %q", ErrOverflow, s)
	}
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q", ErrNotNumber, s)
	}
	return n, nil
}

// sectorsToBytes converts a sector count, refusing counts whose byte size
// does not fit an int64 (no device is that big).
func sectorsToBytes(s uint64) (int64, error) {
	if s > (1<<63-1)/SectorSize {
		return 0, fmt.Errorf("%w: %d sectors", ErrOverflow, s)
	}
	return int64(s) * SectorSize, nil
}

func checkArgCount(name string, args []string, want int) error {
	if len(args) != want {
		return fmt.Errorf("%w: %s takes %d, got %d", ErrArgCount, name, want, len(args))
	}
	return nil
}
