package table

import (
	"sync"

	"github.com/gdm-project/gdm/pkg/targets"
)

// traits are what a table's targets give as a whole: which of them flush
// or see FLUSH requests, the device's logical block size and discard
// support (dm's io_hints and queue limits), and whether `gdm table` must
// hide any args. A table of a million targets is scanned once for all of
// them, the first time any is asked, not once per question.
type traits struct {
	once sync.Once
	// flushers are the targets with a Flush of their own, in table order.
	flushers []targets.Flusher
	// requesters are the targets that see clients' FLUSH requests.
	requesters []targets.FlushRequester
	// counters are the targets that count a FLUSH request failed on one
	// of their devices against themselves.
	counters []targets.FlushCounter
	// blockSize is the largest of the targets' logical block sizes and
	// those of the backing devices they map areas of, or 512.
	blockSize int
	// discards: every target takes discards, and so do the devices of
	// those that send them on (devcaps.go).
	discards bool
	// writeZeroes: every target passes write-zeroes to its devices, and
	// every device takes them.
	writeZeroes bool
	// hides: some target's TABLE status differs from its canonical args.
	hides bool
	// asyncs: some target takes requests asynchronously (a linear target
	// over a remote device), so a request is worth offering to that path;
	// a table of local files skips it with one look (device_async.go).
	asyncs bool
}

// traits scans the targets on the first call.
func (t *Table) traits() *traits {
	tr := &t.tr
	tr.once.Do(func() {
		tr.blockSize = targets.SectorSize
		tr.discards = !t.devCaps.noDiscard
		tr.writeZeroes = !t.devCaps.noWriteZeroes
		for _, tg := range t.targets {
			if f, ok := tg.(targets.Flusher); ok {
				tr.flushers = append(tr.flushers, f)
			}
			if r, ok := tg.(targets.FlushRequester); ok {
				tr.requesters = append(tr.requesters, r)
			}
			if c, ok := tg.(targets.FlushCounter); ok {
				tr.counters = append(tr.counters, c)
			}
			if b, ok := tg.(targets.BlockSizer); ok {
				tr.blockSize = max(tr.blockSize, b.LogicalBlockSize())
			}
			if d, ok := tg.(targets.Discarder); ok && !d.SupportsDiscard() {
				tr.discards = false
			}
			if z, ok := tg.(targets.ZeroPasser); !ok || !z.PassesWriteZeroes() {
				tr.writeZeroes = false
			}
			if a, ok := tg.(targets.AsyncTarget); ok && a.CanAsync() {
				tr.asyncs = true
			}
			if !tr.hides && tg.Status(targets.StatusTable) != "" {
				tr.hides = true
			}
		}
		// The devices stack too (dm_set_device_limits): those the
		// targets map as areas (devcaps.go).
		tr.blockSize = max(tr.blockSize, t.devCaps.blockSize)
	})
	return tr
}
