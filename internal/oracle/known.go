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

// cryptDiscardNote is the note for cryptNoDiscard.
const cryptDiscardNote = "dm has no discard on a table with a crypt target without allow_discards (ENOTSUP), " +
	"where gdm's NBD export still offers TRIM and its crypt target fails it with EIO (a gdm difference, " +
	"not yet fixed): such a discard is not run on gdm"

// cryptNoDiscard is a discard dm refuses as unsupported because a crypt
// target of the table does not allow discards. gdm offers discard on
// every NBD export, so the kernel's nbd client sends it, and the crypt
// target answers EIO (after the other targets of a mixed table have
// discarded their part): a known gdm difference, kept out of the
// comparison as oldDiscard's are and noted, so that the rest of such a
// case still compares.
func cryptNoDiscard(r Result, table string) bool {
	if r.Err != "ENOTSUP" && r.Err != "EOPNOTSUPP" {
		return false
	}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "crypt" && !strings.Contains(strings.ToLower(line), "allow_discards") {
			return true
		}
	}
	return false
}

// discFlushNote is the note for foldDiscFlush.
const discFlushNote = "gdm's log has a flush entry just before its end mark that dm's has not: gdm's NBD server " +
	"flushes the device when nbd-client disconnects, and the flush goes through the table into the log " +
	"(a gdm difference, not yet fixed); compared without it"

// foldDiscFlush undoes, in gdm's epochs b, the one flush gdm's NBD
// server sends down the table at disconnect: where a's epoch i ends at
// the end mark and b's ends at a flush followed by an empty epoch ending
// at the end mark, b's two become one. Anything else is left to differ.
func foldDiscFlush(a, b []epoch) ([]epoch, bool) {
	const end = "mark dm-log-writes-end"
	if len(b) != len(a)+1 {
		return b, false
	}
	for i := range a {
		if a[i].end == end && b[i].end == "flush" && b[i+1].end == end && len(b[i+1].sectors) == 0 {
			merged := epoch{end: end, sectors: b[i].sectors}
			return append(append(append([]epoch(nil), b[:i]...), merged), b[i+2:]...), true
		}
	}
	return b, false
}
