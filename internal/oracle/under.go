package oracle

import (
	"fmt"
	"strconv"
	"strings"
)

// Under devices put something below a case's table: a striped leg that is
// a flakey device, a snapshot whose COW device fails writes. A case lists
// their tables in Under, over its backing devices ($N); its own table and
// More (and reloads) name them $u0, $u1, ... . On dm an under device is
// the /dev/mapper node of its table; on gdm, the kernel's /dev/nbdX
// attached to its export (GDM.Stack). They are
// made before the case's devices, in order, and removed after them, in
// reverse (an acceptance table may have them too: Accept.Under); their
// table and status text compare with the case's (each side's names of
// them made $uK), and their contents are not compared, only their backing
// devices' are.

// underToken names under device k in a table: "$uK".
func underToken(k int) string { return "$u" + strconv.Itoa(k) }

// underIndex reads a "$uK" token.
func underIndex(f string) (int, bool) {
	rest, ok := strings.CutPrefix(f, "$u")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	return k, err == nil && k >= 0
}

// BindUnder puts the under devices' paths in a table: $uK becomes
// under[K]. The backing devices' $N are left for Bind.
func BindUnder(table string, under []string) string {
	return replaceTokens(table, func(f string) (string, bool) {
		if k, ok := underIndex(f); ok && k < len(under) {
			return under[k], true
		}
		return "", false
	})
}

// underNamesOf names a case's n under devices: name-u0, name-u1, ...
func underNamesOf(name string, n int) []string {
	names := make([]string, n)
	for k := range names {
		names[k] = fmt.Sprintf("%s-u%d", name, k)
	}
	return names
}

// makeUnder creates a case's under devices on both sides, in order, and
// stacks each (Side.Stack), keeping both sides' names of them (rn.under,
// rn.underNames) for binding and unbinding. On a failure it removes what
// it made and says false.
func (rn *Runner) makeUnder(rep *Report, names, tables []string) bool {
	rn.under = [2][]string{}
	rn.underNames = [2]map[string]string{{}, {}}
	rn.underNBD = nil
	for k, tb := range tables {
		errA := rn.A.Create(names[k], Bind(tb, rn.A.Disks()))
		errB := rn.B.Create(names[k], Bind(tb, rn.B.Disks()))
		if errA != nil || errB != nil {
			rep.addf("create under device %s: %s: %v; %s: %v", names[k], rn.A.Name(), errA, rn.B.Name(), errB)
			rn.remove(names[k], errA == nil, errB == nil)
			rn.removeAll(rep, names[:k])
			return false
		}
		rn.underNBD = append(rn.underNBD, rn.nextNBD())
		for i := range 2 {
			if err := rn.bindUnder(i, names[k], k); err != nil {
				rep.addf("stack under device %s on %s: %v", names[k], rn.side(i).Name(), err)
				rn.removeAll(rep, names[:k+1])
				return false
			}
		}
	}
	return true
}

// bindUnder stacks under device k (named name) on side i and learns
// every way that side prints it: its name, and a block device's
// major:minor.
func (rn *Runner) bindUnder(i int, name string, k int) error {
	p, err := rn.side(i).Stack(name, rn.underNBD[k])
	if err != nil {
		return err
	}
	rn.under[i] = append(rn.under[i], p)
	rn.underNames[i][p] = underToken(k)
	if strings.Contains(p, "://") {
		return nil // an export: its URI is its only name
	}
	mm, err := majorMinor(p)
	rn.underNames[i][mm] = underToken(k)
	return err
}

// dropUnder removes the under devices names (made by makeUnder) from both
// sides, the last made first, and forgets them.
func (rn *Runner) dropUnder(rep *Report, names []string) {
	rn.removeAll(rep, names)
	rn.under, rn.underNames, rn.underNBD = [2][]string{}, [2]map[string]string{}, nil
}

// bind is a table as side i loads it: its under devices' tokens, then its
// backing devices', made that side's names.
func (rn *Runner) bind(i int, table string) string {
	return Bind(BindUnder(table, rn.under[i]), rn.side(i).Disks())
}

// unbind is Bind's inverse for text side i printed: its backing devices'
// names become $N, its under devices' $uK.
func (rn *Runner) unbind(i int, text string) string {
	text = Unbind(text, rn.side(i).DevNames())
	return replaceTokens(text, func(f string) (string, bool) {
		tok, ok := rn.underNames[i][f]
		return tok, ok
	})
}
