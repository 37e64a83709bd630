package oracle

import (
	"fmt"
	"slices"
)

// Accept is a table that dm accepts (Want) or refuses; gdm must do the
// same, and when both accept, print the same table and status.
type Accept struct {
	Table string
	Want  bool
	// GdmRefuses, when set, says why gdm refuses a table dm accepts, on
	// purpose: the report notes it instead of failing (and fails if gdm
	// accepts after all, or dm refuses).
	GdmRefuses string
	// Zero lists the backing devices ($N) zeroed on both sides first: a
	// table that reads its device at load (a persistent snapshot's COW)
	// would otherwise read what the cases before it left there.
	Zero []int
	// FourK lists the $N that are disks of 4 KiB blocks (see Case).
	FourK []int
	// Under are devices made under the table first ($uK, as Case's).
	Under []string
}

// Label is what the guest's -only matches for an acceptance table:
// "accept", "accept-4k" for one over 4K disks, "accept-stacked" for one
// over under devices.
func (a Accept) Label() string {
	switch {
	case len(a.FourK) > 0:
		return "accept-4k"
	case len(a.Under) > 0:
		return "accept-stacked"
	}
	return "accept"
}

// Acceptance is the set of tables both must accept or refuse alike: bad
// chunk sizes, lengths, argument counts, numbers, devices too small, and
// the table-wide rules (start at 0, no gaps, no overlaps).
func Acceptance() []Accept {
	yes := func(t string) Accept { return Accept{Table: t, Want: true} }
	no := func(t string) Accept { return Accept{Table: t} }
	return append([]Accept{
		yes("0 16384 linear $0 0"),
		yes("0 1 linear $0 16383"),
		yes("0 100 linear $0 007"),
		yes("0 16384 striped 1 8 $0 0"),
		yes("0 12 striped 2 3 $0 0 $1 0"),
		yes("0 32768 striped 2 16384 $0 0 $1 0"),
		yes("0 16 striped 2 8 $0 0 $0 8"),
		yes("0 8 zero"),
		yes("0 8 error"),
		yes("0 8 zero\n8 8 error\n16 8 linear $1 8"),
		yes("0 16 striped 2 8 $0 1 $1 16375"),
		yes("0 8 error foo bar"),
		yes("0 +8 zero\n+8 8 zero"),
		yes("0 16 striped +2 +8 $0 0 $1 0"),
		yes("0 8 zero # spare"), // dmsetup cuts the args at '#'
		yes("0 100 linear $0 7#seven"),
		yes("0 16 striped 2 8 $0 0 $1 0 # two legs"),
		yes("0 8 error\n\t8   8 zero # x\n"),
		no("0 100 linear $0 \\7"),
		no("0 8 zero\u3000"), // only ASCII white space splits a line
		no("0 100 linear $0 0\u00a0"),
		{Table: "0 8zero", Want: true, GdmRefuses: "dmsetup's sscanf reads a length run into the type (8zero) as two fields; gdm splits fields at white space"},
		{Table: "0 100 linear $0 18446744073709551616", Want: true, GdmRefuses: "an offset past 2^64-1, which dm's sscanf %llu silently wraps"},
		no("0 16385 linear $0 0"),
		no("0 100 linear $0 16300"),
		no("0 100 linear $0"),
		no("0 100 linear $0 0 5"),
		no("0 100 linear $0 x"),
		no("0 100 linear $0 -1"),
		no("0 100 linear /dev/nonexistent 0"),
		no("0 16 striped 2 0 $0 0 $1 0"),
		no("0 16 striped 0 8"),
		no("0 16 striped 2 8x $0 0 $1 0"),
		no("0 18 striped 2 8 $0 0 $1 0"),
		no("0 17 striped 2 1 $0 0 $1 0"),
		no("0 16 striped 2 8 $0 0"),
		no("0 16 striped 2 8 $0 0 $1 0 $2 0"),
		no("0 16 striped 2"),
		no("0 32768 striped 2 8 $0 0 $1 8"),
		no("0 16 striped 2 8 $0 0 $1 16377"),
		no("0 8 zero 1"),
		no("0 0 zero"),
		no("1 8 zero"),
		no("0 8 zero\n16 8 zero"),
		no("0 8 zero\n4 8 zero"),
		no("0 8 bogus"),
		no("0 8 ZERO"),
		no("0 100 linear $0 0x10"),
		no("0 100 linear $0 +5"),
		no("0 16 striped ++2 8 $0 0 $1 0"),
		no("0 16 striped 2 8 $0 0 $1 +0"),
		no("0 ++8 zero"),
		no("0 -8 zero"),
		no("0 100 linear $0 18446744073709551615"),
		no("0 16 striped 4294967298 8 $0 0 $1 0"),
		no("0 16 striped 2 4294967304 $0 0 $1 0"),
		no("0 16 snapshot $0 $1 P 8 3 discard_zeroes_cow discard_zeroes_cow discard_passdown_origin"),
		yes("0 16 snapshot $0 $1 NO 8"),
		{Table: "0 16 snapshot $0 $1 pOx 8", Want: true, Zero: []int{1}}, // a new COW: no header yet
		no("0 16 snapshot $0 $1 PX 8"),
	}, slices.Concat(faultAcceptance(), CryptAcceptance(), Acceptance4K(), stackedAcceptance())...)
}

// RunAccept creates one table on both sides and compares the verdicts
// with each other and with the case's expectation (a case dm does not
// judge as written is itself wrong), then table and status text.
func (rn *Runner) RunAccept(i int, a Accept) *Report {
	name := fmt.Sprintf("accept-%d", i)
	rep := &Report{Case: fmt.Sprintf("%s %q", name, a.Table), Ops: 1}
	if len(a.FourK) > 0 {
		rep.Case += fmt.Sprintf(" (4K disks: %v)", a.FourK)
	}
	if len(a.Under) > 0 {
		rep.Case += fmt.Sprintf(" (under: %q)", a.Under)
	}
	restore, err := rn.useFourK(devCount(a.Table), a.FourK)
	if err != nil {
		rep.addf("the table's 4K disks: %v", err)
		return rep
	}
	defer restore()
	for _, i := range a.Zero {
		for _, s := range []Side{rn.A, rn.B} {
			if err := rn.fill(s.Disks()[i], Zeros); err != nil {
				rep.addf("zeroing %s's $%d: %v", s.Name(), i, err)
				return rep
			}
		}
	}
	unames := underNamesOf(name, len(a.Under))
	if !rn.makeUnder(rep, unames, a.Under) {
		return rep
	}
	defer rn.dropUnder(rep, unames)
	errA := rn.A.Create(name, rn.bind(0, a.Table))
	errB := rn.B.Create(name, rn.bind(1, a.Table))
	verdict := func(err error) string {
		if err != nil {
			return "refused (" + err.Error() + ")"
		}
		return "accepted"
	}
	if (errA == nil) != a.Want {
		rep.addf("the case expects dm to %s, but %s %s", map[bool]string{true: "accept", false: "refuse"}[a.Want],
			rn.A.Name(), verdict(errA))
	}
	switch {
	case a.GdmRefuses != "" && errB == nil:
		rep.addf("%s accepted a table it is meant to refuse (%s)", rn.B.Name(), a.GdmRefuses)
	case a.GdmRefuses != "" && errA == nil:
		rep.note(fmt.Sprintf("%s accepts and %s refuses, on purpose: %s", rn.A.Name(), rn.B.Name(), a.GdmRefuses))
		errA = errB // compared as both refused from here on
	case (errA == nil) != (errB == nil):
		rep.addf("%s %s; %s %s", rn.A.Name(), verdict(errA), rn.B.Name(), verdict(errB))
	}
	if errA == nil && errB == nil {
		rn.compareText(rep, name, "after create")
	}
	if err := rn.remove(name, errA == nil, errB == nil); err != nil {
		rep.addf("remove: %v", err)
	}
	return rep
}
