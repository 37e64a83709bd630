package oracle

import (
	"strings"
	"testing"
)

// A case's Expect is looked for in dm's status of all its devices, under
// ones included, with device names as tokens; one dm's status lacks fails
// the case, in either half.
func TestRunnerExpect(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	a.status = "0 8192 striped 2 " + a.disk + " AD\n"
	b.status = strings.Replace(a.status, a.disk, b.disk, 1)
	rn := &Runner{A: a, B: b, DiskSize: size}
	c := Case{Name: "c", Devs: []Init{Zeros}, Table: "0 8192 linear $0 0", Script: []Op{},
		Expect: []string{"striped 2 $0 AD"}}
	if r := rn.Run(c); !r.OK() {
		t.Fatalf("an expected status failed:\n%s", r)
	}
	c.Expect = []string{"$0 AA"}
	if r := rn.Run(c); r.OK() || !strings.Contains(r.String(), `to hold "$0 AA"`) {
		t.Fatalf("a status without what the case expects passed:\n%s", r)
	}
	c.Expect, c.Then = nil, &Half{Table: c.Table, Script: []Op{}, Expect: []string{"Invalid"}}
	if r := rn.Run(c); r.OK() || !strings.Contains(r.String(), `second half (each side on the other's backing devices): the case expects`) {
		t.Fatalf("a second half's expectation went unchecked:\n%s", r)
	}
}
