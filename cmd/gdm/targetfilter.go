package main

import (
	"io"
	"net/url"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// --target TYPE, as dmsetup's: table and status print only the lines of
// targets of that type (a device with none prints nothing), ls only the
// devices with at least one. The filter is the client's: the daemon sends
// what it always sends.

// lineType is the type of one table line ("start length type args").
func lineType(line string) string {
	f := strings.SplitN(line, " ", 4)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// filterTableText keeps the lines of text whose target is of type typ.
func filterTableText(text, typ string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		if lineType(strings.TrimSuffix(line, "\n")) == typ {
			b.WriteString(line)
		}
	}
	return b.String()
}

// filterTables keeps, of tables, the lines of targets of type typ; with
// dropEmpty (a listing of every device), the tables left with none go.
func filterTables(tables []controlapi.TableText, typ string, dropEmpty bool) []controlapi.TableText {
	out := tables[:0]
	for _, t := range tables {
		t.Table = filterTableText(t.Table, typ)
		if t.Table != "" || !dropEmpty {
			out = append(out, t)
		}
	}
	return out
}

// hasTarget says whether the device's live table has a target of type typ.
func hasTarget(a *controlapi.Client, name, typ string) (bool, error) {
	found := false
	q := url.Values{"format": {"text"}}
	err := streamOne(a, controlapi.DevicePath(name, "/table"), q, func(body io.Reader) error {
		return eachLine(body, func(line string) { found = found || lineType(line) == typ })
	})
	return found, err
}
