package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
)

const (
	defaultControl   = "/run/gdm/gdm.sock"
	defaultNBDSocket = "/run/gdm/nbd.sock"
)

// clientFlags are the flags every client verb has.
type clientFlags struct {
	control string
	json    bool
}

func (c *clientFlags) register(fs *flag.FlagSet, printing bool) {
	def := os.Getenv("GDM_CONTROL")
	if def == "" {
		def = defaultControl
	}
	fs.StringVar(&c.control, "control", def, "control socket of the daemon ($GDM_CONTROL)")
	if printing {
		fs.BoolVar(&c.json, "json", false, "print JSON")
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// tableFlags take a table as dmsetup does: --table-file FILE, one or more
// --table 'LINE', or stdin.
type tableFlags struct {
	file  string
	lines stringList
}

func (t *tableFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.file, "table-file", "", "read the table from `FILE`")
	fs.Var(&t.lines, "table", "a table `LINE` (repeatable; one target each)")
}

// read returns the table's text as read: a million targets are 50 MB,
// sent as they are, not copied into a string first.
func (t *tableFlags) read(stdin io.Reader) ([]byte, error) {
	switch {
	case t.file != "" && len(t.lines) > 0:
		return nil, fmt.Errorf("%w: --table-file and --table together", errUsage)
	case t.file != "":
		return readFile(t.file)
	case len(t.lines) > 0:
		return []byte(strings.Join(t.lines, "\n") + "\n"), nil
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil, fmt.Errorf("%w: no table: give --table-file, --table or the table on stdin", errUsage)
		}
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errEmptyStdin
	}
	return b, nil
}

// errEmptyStdin is a table read from stdin that was empty: an error for
// load; create makes the device without a table, as dmsetup create does.
var errEmptyStdin = errors.New("no table: give --table-file, --table or the table on stdin")

// readFile reads a table file into one buffer of its size, in huge pages
// if big (table.ReadText).
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return table.ReadText(f, st.Size())
}

// postDevice runs one action on a device (load, resume, suspend, clear,
// rename) and, with --json, prints the device's info after it.
func postDevice(cf clientFlags, stdout io.Writer, name, action string, q url.Values, body any) error {
	var info controlapi.DeviceInfo
	if err := verbClient(cf, q).Call(http.MethodPost, controlapi.DevicePath(name, "/"+action), q, body, &info); err != nil {
		return onDevice(name, err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}

// verbClient is the control client for a verb with query q: its bound
// covers the verb's own --timeout (suspend, resume), however long.
func verbClient(cf clientFlags, q url.Values) *controlapi.Client {
	a := controlapi.New(cf.control)
	if d, err := time.ParseDuration(q.Get("timeout")); err == nil {
		a = a.Covering(d)
	}
	return a
}

// postTable sends a table as plain text (create, load): a million targets
// are 50 MB the daemon reads once, not a JSON string to decode. With
// --json it prints the device's info after it.
func postTable(cf clientFlags, stdout io.Writer, name, path string, q url.Values, text []byte) error {
	var info controlapi.DeviceInfo
	err := controlapi.New(cf.control).CallBody(http.MethodPost, path, q, controlapi.TextTable, bytes.NewReader(text), &info)
	if err != nil {
		return onDevice(name, err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}

// waitQuery is the query of a verb that waits for in-flight I/O: the flag
// named by set (if on) and the timeout (if given). A negative timeout is a
// usage error: the daemon would wait its default instead.
func waitQuery(flag string, set bool, timeout time.Duration) (url.Values, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("%w: --timeout must be positive, not %v", errUsage, timeout)
	}
	q := url.Values{}
	if set {
		q.Set(flag, "1")
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	return q, nil
}

// getEach fetches path suffix for each named device; listed says the
// names are a listing of every device (see removedSinceListed).
func getEach[T any](a *controlapi.Client, names []string, suffix string, q url.Values, listed bool) ([]T, error) {
	out := make([]T, 0, len(names))
	for _, n := range names {
		var v T
		if err := a.Call(http.MethodGet, controlapi.DevicePath(n, suffix), q, nil, &v); err != nil {
			if listed && removedSinceListed(err) {
				continue
			}
			return nil, onDevice(n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// show prints what a query verb fetched for the named device (named) or
// for every device: with --json the one item, or the list; otherwise each
// item as text writes it (k counts the items).
func show[T any](cf clientFlags, w io.Writer, named bool, items []T, text func(w io.Writer, item T, k int)) error {
	if cf.json {
		if named {
			return printJSON(w, items[0])
		}
		return printJSON(w, items)
	}
	for k, it := range items {
		text(w, it, k)
	}
	return nil
}
