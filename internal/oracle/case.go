// Package oracle checks gdm against the kernel's own device-mapper: one
// table and one I/O script run on both, and everything a user could observe
// is compared (each operation's result and data, the backing devices'
// final contents, table and status text, the device size, and whether a
// table is accepted at all).
//
// The package is the whole harness but the boot: e2e/oracleguest runs it in
// a qemu guest where dm and gdm sit side by side (see Side), and
// e2e/oracle_test.go boots that guest. A case is a few lines here (cases.go,
// acceptance.go); every target added to gdm adds its cases.
package oracle

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Init is a backing device's contents before a case runs: zeros, or the
// seeded pattern when Pattern is set.
type Init struct {
	Pattern bool
	Seed    uint64
}

// Zeros and Pattern name the two kinds of Init.
var Zeros = Init{}

// Pattern fills a backing device with the pattern of seed.
func Pattern(seed uint64) Init { return Init{Pattern: true, Seed: seed} }

// OpKind is what one step of a script does.
type OpKind string

// The operations of a script. Read, the writes, discard and write-zeroes
// take a byte range of the mapped device; flush takes none; suspend, resume
// and reload act on the device itself (reload takes a table in Arg), as
// does message (its words in Arg, to the target at sector 0: a log-writes
// mark is "mark NAME").
// SuspendDuring starts its Inner op (a read or a write of the range), and
// At later suspends the device while the op is still held by a delay
// target; the op must then finish before its Delay has passed, as dm lets
// held I/O go at presuspend. The device stays suspended.
const (
	Read        OpKind = "read"
	Write       OpKind = "write"
	WriteFUA    OpKind = "fua-write"
	Discard     OpKind = "discard"
	WriteZeroes OpKind = "write-zeroes"
	Flush       OpKind = "flush"
	Suspend     OpKind = "suspend"
	Resume      OpKind = "resume"
	Reload      OpKind = "reload"
	Message     OpKind = "message"

	SuspendDuring OpKind = "suspend-during"
)

// Op is one step of a script. A write's data is the pattern of Seed.
type Op struct {
	Kind OpKind
	Off  int64 // bytes
	Len  int64 // bytes
	Seed uint64
	Arg  string // Reload: the new table (with $N device names); Message: its words
	// At holds an I/O op until At after this side's table was loaded
	// (created or reloaded), and Until (when set) is when it must have
	// finished: flakey's up and down intervals run from its table's
	// construction, on each side from its own.
	At, Until time.Duration
	// Delay is the least time an I/O op must take on both sides (its
	// delay class); for SuspendDuring, the time it must not reach.
	Delay time.Duration
	Inner OpKind // SuspendDuring: Read or Write
	// Dev is the device the op acts on: 0 the case's own table, i > 0
	// the case's More[i-1].
	Dev int
}

func (o Op) String() string {
	switch o.Kind {
	case Suspend, Resume:
		return string(o.Kind)
	case Reload, Message:
		return fmt.Sprintf("%s %q", o.Kind, o.Arg)
	case SuspendDuring:
		return fmt.Sprintf("suspend %v into a %v-delayed %s %d@%d", o.At, o.Delay, o.Inner, o.Len, o.Off)
	}
	s := fmt.Sprintf("%s %d@%d (sectors %d+%d)", o.Kind, o.Len, o.Off, o.Off/512, o.Len/512)
	if o.Kind == Flush {
		s = string(o.Kind)
	}
	if o.Dev > 0 {
		s += fmt.Sprintf(" on device %d", o.Dev)
	}
	if o.At > 0 {
		s += fmt.Sprintf(" at %v", o.At)
	}
	if o.Delay > 0 {
		s += fmt.Sprintf(" delayed %v", o.Delay)
	}
	return s
}

// Case is one table and one script, run on dm and on gdm over backing
// devices that start with the same contents.
type Case struct {
	Name string
	// Devs are the backing devices $0, $1, ... of the table, in order.
	Devs []Init
	// Table is in dmsetup's syntax, one target a line, with $N for the
	// N-th backing device.
	Table string
	// Script is the I/O; nil runs Standard(Seed) over the table.
	Script []Op
	// Seed is printed with every difference, so that a case can be replayed.
	Seed uint64
	// Later, when set, turns dm's result of an op into what later kernels
	// answer, where gdm follows them (known.go); it returns a note when it
	// changed something.
	Later func(Op, *Result) string
	// Scratch are backing devices whose final contents are not compared,
	// only noted: an N snapshot's COW, where dm places the copies of a
	// write across chunks in the order its split pieces happen to run.
	// What the snapshot reads from it is compared all the same.
	Scratch []int
	// More are further devices of the case, each with its own table over
	// the same backing devices (a snapshot-origin and its snapshots, as
	// users make them): created after the case's own, in order, and
	// removed before it, in reverse. An op's Dev picks the device.
	More []string
	// Under are devices to put below the case's tables: each a table
	// over the backing devices ($N), made before the case's devices, in
	// order, and removed after them, in reverse. The case's Table, More
	// and reloads name them $u0, $u1, ... (under.go).
	Under []string
	// Expect are texts that dm's status of the case's devices must hold
	// after the script ($N and $uK for device names): the fault a case is
	// about took place on the kernel (a striped leg shown D, a snapshot
	// Invalid), so that a case whose fault never happens fails instead of
	// comparing nothing.
	Expect []string
	// FourK lists the case's backing devices ($N) that are the guest's
	// disks of 4096-byte logical blocks (disks4k.go); the others are its
	// 512-byte disks.
	FourK []int
	// Then, when set, is the case's second half, for what one side wrote
	// and the other must read: once the first half's devices are gone and
	// the backing devices compared, each side's backing devices get the
	// other side's contents (dm's COW device goes to gdm, gdm's to dm),
	// and Then's tables and script run on them.
	Then *Half
}

// Half is the second half of a case: its tables (as Case's Table, More
// and Under), its script, which must be given, and its Expect.
type Half struct {
	Table  string
	More   []string
	Under  []string
	Script []Op
	Expect []string
}

// Bind puts real device names in a table: $N becomes devs[N].
func Bind(table string, devs []string) string {
	return replaceTokens(table, func(f string) (string, bool) {
		if n, ok := devIndex(f); ok && n < len(devs) {
			return devs[n], true
		}
		return "", false
	})
}

// devIndex reads a "$N" token.
func devIndex(f string) (int, bool) {
	if !strings.HasPrefix(f, "$") {
		return 0, false
	}
	n, err := strconv.Atoi(f[1:])
	return n, err == nil && n >= 0
}

// devCount is how many backing devices a table names: its highest $N,
// plus one.
func devCount(table string) int {
	n := 0
	replaceTokens(table, func(f string) (string, bool) {
		if i, ok := devIndex(f); ok {
			n = max(n, i+1)
		}
		return "", false
	})
	return n
}

// Unbind is Bind's inverse for text a side printed: each token that names
// backing device N (by path or by major:minor) becomes $N. Spacing is kept
// exactly, so that a stray or missing blank still shows as a difference.
func Unbind(text string, names map[string]int) string {
	return replaceTokens(text, func(f string) (string, bool) {
		n, ok := names[f]
		return "$" + strconv.Itoa(n), ok
	})
}

// replaceTokens rewrites the space-separated tokens of text that repl
// knows, leaving every separator as it was.
func replaceTokens(text string, repl func(string) (string, bool)) string {
	lines := strings.Split(text, "\n")
	for li, line := range lines {
		tokens := strings.Split(line, " ")
		for i, tok := range tokens {
			if r, ok := repl(tok); ok {
				tokens[i] = r
			}
		}
		lines[li] = strings.Join(tokens, " ")
	}
	return strings.Join(lines, "\n")
}
