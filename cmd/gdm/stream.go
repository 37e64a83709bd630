package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// The text output of `gdm table` and `gdm status`, printed as the daemon
// streams it: a million-target table is never whole in this process.

// streamTables prints each named device's table as it arrives, each line
// prefixed with the device's name when prefix is set; only the lines of
// targets of type typ, if it is set.
func streamTables(a *controlapi.Client, out io.Writer, names []string, q url.Values, prefix bool, typ string) error {
	w := bufio.NewWriterSize(out, 64<<10) // a write per line would be a syscall per line
	defer w.Flush()
	q.Set("format", "text")
	for _, n := range names {
		err := streamOne(a, controlapi.DevicePath(n, "/table"), q, func(body io.Reader) error {
			return eachLine(body, func(line string) {
				if typ != "" && lineType(line) != typ {
					return
				}
				if prefix {
					fmt.Fprintf(w, "%s: ", n)
				}
				w.WriteString(dmsetupLine(strings.SplitN(line, " ", 4)...) + "\n")
			})
		})
		if err != nil && !(prefix && removedSinceListed(err)) {
			return onDevice(n, err)
		}
	}
	return nil
}

// streamStatuses prints each named device's status lines as they are
// decoded; only those of targets of type typ, if it is set.
func streamStatuses(a *controlapi.Client, out io.Writer, names []string, prefix bool, typ string) error {
	w := bufio.NewWriterSize(out, 64<<10)
	defer w.Flush()
	for _, n := range names {
		err := streamOne(a, controlapi.DevicePath(n, "/status"), nil, func(body io.Reader) error {
			return eachStatusLine(body, func(t controlapi.StatusLine) {
				if typ != "" && t.Type != typ {
					return
				}
				if prefix {
					fmt.Fprintf(w, "%s: ", n)
				}
				w.WriteString(dmsetupLine(strconv.FormatUint(t.Start, 10), strconv.FormatUint(t.Length, 10), t.Type, t.Status) + "\n")
			})
		})
		if err != nil && !(prefix && removedSinceListed(err)) {
			return onDevice(n, err)
		}
	}
	return nil
}

// removedSinceListed says a device of a listing of every device was
// removed before its turn came: it is left out, as if listed a moment
// later, rather than fail the listing of the others.
func removedSinceListed(err error) bool { return controlapi.NoSuchDevice(err) }

// dmsetupLine prints a target the way dmsetup does ("%llu %llu %s %s"):
// start, length, type and parameters, with the blank before the parameters
// even when a target has none ("0 8 zero "), so that gdm's table and status
// output is dmsetup's to the byte.
func dmsetupLine(fields ...string) string {
	for len(fields) < 4 {
		fields = append(fields, "")
	}
	return strings.Join(fields, " ")
}

// streamOne GETs path and hands its body to read.
func streamOne(a *controlapi.Client, path string, q url.Values, read func(io.Reader) error) error {
	body, err := a.Open(http.MethodGet, path, q, "", nil)
	if err != nil {
		return err
	}
	defer body.Close()
	return read(body)
}

// eachLine calls fn with each non-empty line of r, without its newline.
func eachLine(r io.Reader, fn func(string)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			fn(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// eachStatusLine decodes a DeviceStatus from r one target at a time.
func eachStatusLine(r io.Reader, fn func(controlapi.StatusLine)) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return err
		}
		if key != "targets" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return err
		}
		for dec.More() {
			var t controlapi.StatusLine
			if err := dec.Decode(&t); err != nil {
				return err
			}
			fn(t)
		}
		if err := expectDelim(dec, ']'); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if tok != want {
		return fmt.Errorf("reading the daemon's answer: %v where %v was expected", tok, want)
	}
	return nil
}
