package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/gdm-project/gdm/pkg/table"
)

// A device's tables (those over inlineTableMax) live in files of their own
// beside its JSON state, written once when the table is loaded: suspend, resume, rename and clear
// rewrite only the small JSON, never a 50 MB table.
//
// A table file is named by its device's id and its content's hash
// (<id>.<sha256 prefix>.table) and written whole (temp file, fsync,
// rename, fsync dir) before the JSON that names it is written: a crash
// leaves at worst a table file no JSON names, removed at the next start
// (sweepTables). A file the old JSON named is removed only after the new
// JSON is durable and the verb's change in memory is done (dropTables).
// The temp file of a big table is written from the text received while
// the table is built from it (tableFile), and renamed in place only once
// the table is built and its text found canonical.
//
// A small table, and any in state written before table files, is its text
// inside the JSON (live_table/inactive_table); a big one in such old state
// is moved out to a file once its device is restored (externalize).

const tableSuffix = ".table"

// inlineTableMax is the largest table kept inside its device's JSON: a
// small table costs one file and one fsync, not two (10,000 one-line
// devices were created at half the speed with a file each), and rewriting
// a JSON of a few kilobytes costs nothing. A variable for tests.
var inlineTableMax = 16 << 10

// tableFiles are the table files a definition names.
func (s deviceState) tableFiles() []string {
	var out []string
	for _, f := range []string{s.LiveFile, s.InactiveFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// saveTable makes t's text savable in a definition: the text itself for a
// small table (file ""), else the name of a new table file of device id
// (text ""). early is the file startTableFile began writing from the text
// t was built from, or nil: kept if that text is t's canonical text,
// else dropped and the canonical text written.
func (s *stateStore) saveTable(id string, t *table.Table, early *tableFile) (file, text string, err error) {
	if early != nil {
		if t.Verbatim() {
			file := early.keep()
			return file, "", early.err
		}
		early.drop()
	}
	if t.Len() <= inlineTableMax/32 { // cheap to make, to measure
		if text = t.Text(); len(text) <= inlineTableMax {
			return "", text, nil
		}
	}
	file, err = s.writeTable(id, t)
	return file, "", err
}

// writeTable writes t's text to a new table file of device id and returns
// its name.
func (s *stateStore) writeTable(id string, t *table.Table) (string, error) {
	if s.failWrites.Load() {
		return "", fmt.Errorf("state: %w", errInjected)
	}
	var name string
	err := s.replace(func(w io.Writer) (string, error) {
		h := sha256.New()
		var err error
		if t.Verbatim() {
			err = writeHashed(w, h, t.Text(), nil)
		} else {
			err = t.WriteText(io.MultiWriter(w, h))
		}
		name = tableFileName(id, h)
		return name, err
	})
	return name, err
}

// tableFileName names a table file by its device and its text's hash.
func tableFileName(id string, h hash.Hash) string {
	return id + "." + hex.EncodeToString(h.Sum(nil)[:12]) + tableSuffix
}

// writeHashed writes text to w and h a chunk at a time, without copying
// it (io.WriteString to a MultiWriter would copy all of it first: tens of
// megabytes of fresh memory, and garbage the daemon's RSS keeps), and
// stops early, with errDropped, once stop is set.
func writeHashed(w io.Writer, h hash.Hash, text string, stop *atomic.Bool) error {
	for text != "" {
		if stop != nil && stop.Load() {
			return errDropped
		}
		chunk := text[:min(len(text), 1<<20)]
		b := unsafe.Slice(unsafe.StringData(chunk), len(chunk)) // only read
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		text = text[len(chunk):]
	}
	return nil
}

var errDropped = errors.New("table file dropped")

// tableFile is a table file written from a table's text while the table is
// built from it: on this 2-core machine writing a million targets' text
// (and its fsync) took as long as a third of the create, after the build;
// beside it, it costs the create nothing. Most texts sent are canonical
// (gdm wrote them), and then the file is the one writeTable would have
// made; for the others it is dropped. Until keep, it is a temp file, which
// the next start removes if a crash leaves it.
type tableFile struct {
	s    *stateStore
	stop atomic.Bool
	done chan struct{}
	// Set before done closes: the fsynced temp file, its name to be, or
	// why there is none.
	tmp, name string
	err       error
}

// startTableFile starts writing text to a table file of device id.
func (s *stateStore) startTableFile(id, text string) *tableFile {
	f := &tableFile{s: s, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if s.failWrites.Load() {
			f.err = fmt.Errorf("state: %w", errInjected)
			return
		}
		f.tmp, f.name, f.err = s.writeTemp(func(w io.Writer) (string, error) {
			h := sha256.New()
			err := writeHashed(w, h, text, &f.stop)
			return tableFileName(id, h), err
		})
	}()
	return f
}

// keep waits for the file and puts it in place, durably; its name, or ""
// with f.err set.
func (f *tableFile) keep() string {
	<-f.done
	if f.err == nil {
		f.err = f.s.install(f.tmp, f.name)
	}
	if f.err != nil {
		return ""
	}
	return f.name
}

// drop stops the file's writing and removes it.
func (f *tableFile) drop() {
	f.stop.Store(true)
	<-f.done
	if f.err == nil {
		os.Remove(f.tmp)
	}
}

// tableText is the text of a saved table: its file's, or (state written
// before table files) the text inside the JSON.
func (s *stateStore) tableText(file, inline string) (string, error) {
	if file == "" {
		return inline, nil
	}
	f, err := os.Open(filepath.Join(s.devicesDir(), file))
	if err != nil {
		return "", fmt.Errorf("state: table file: %w", err)
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	b, err := table.ReadText(f, size) // one buffer, read into, used as the text
	if err != nil {
		return "", fmt.Errorf("state: table file: %w", err)
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// dropTables removes the table files old names and keep does not.
func (s *stateStore) dropTables(old, keep deviceState) {
	for _, f := range old.tableFiles() {
		if f != keep.LiveFile && f != keep.InactiveFile {
			os.Remove(filepath.Join(s.devicesDir(), f)) // if it fails, swept at the next start
		}
	}
}

// checkTableFiles refuses a definition naming a table file that is not its
// device's (a path, or another device's file).
func checkTableFiles(st deviceState) error {
	for _, f := range st.tableFiles() {
		if !strings.HasPrefix(f, st.ID+".") || !strings.HasSuffix(f, tableSuffix) || strings.ContainsAny(f, `/\`) {
			return fmt.Errorf("names table file %q, not one of its own", f)
		}
	}
	return nil
}

// sweepTables removes the table files that no definition names: left by a
// crash between a table file and the JSON naming it, or between a JSON and
// the removal of the file it stopped naming. The files of a device whose
// JSON cannot be read (idsUnread) are kept with it, for the operator.
func (s *stateStore) sweepTables(devs []deviceState, idsUnread map[string]bool) {
	named := map[string]bool{}
	for _, st := range devs {
		for _, f := range st.tableFiles() {
			named[f] = true
		}
	}
	entries, _ := os.ReadDir(s.devicesDir())
	for _, e := range entries {
		n := e.Name()
		id, _, _ := strings.Cut(n, ".")
		if !e.Type().IsRegular() || !strings.HasSuffix(n, tableSuffix) || named[n] || idsUnread[id] {
			continue
		}
		os.Remove(filepath.Join(s.devicesDir(), n))
	}
}
