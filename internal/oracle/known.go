package oracle

import (
	"fmt"
	"strings"
)

// Where dm 6.1 (the guest's kernel) does something later kernels fixed and
// gdm follows the later kernels, the oracle compares gdm with what the
// later kernel does, computed from dm's answer, and notes it in the report.
// Each adjustment is as narrow as the fix: anything else still differs.

// flakeyBlankNote is the note for oldFlakeyBlank.
const flakeyBlankNote = "dm 6.1 ends a flakey table line with a blank (later kernels do not, nor gdm): compared without it"

// oldFlakeyBlank takes the one trailing blank off each flakey line of
// dm's table text, and says whether there was one.
func oldFlakeyBlank(text string) (string, bool) {
	lines := strings.Split(text, "\n")
	found := false
	for i, l := range lines {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "flakey" && strings.HasSuffix(l, " ") {
			lines[i], found = l[:len(l)-1], true
		}
	}
	return strings.Join(lines, "\n"), found
}

// LaterReadCorrupt is a Case's Later for a flakey target that is always
// down with corrupt_bio_byte <nth> r <value> 0: 6.1 corrupts no read (its
// end_io looks at a bio the block layer has already advanced; fixed in
// 2025), later kernels set byte nth of each read request to value. Every
// op of such a case is one request (cases_faults.go keeps them small).
func LaterReadCorrupt(nth int, value byte) func(Op, *Result) string {
	return func(op Op, r *Result) string {
		if op.Kind != Read || r.Err != "" || len(r.Data) < nth {
			return ""
		}
		r.Data[nth-1] = value
		return fmt.Sprintf("dm 6.1 corrupts no read (fixed in 2025; gdm does as the fix): reads compared with dm's data, byte %d set to %d", nth, value)
	}
}
