package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
)

// A million-target table is tens of megabytes of text. These handlers take
// it in and give it out as plain text: never inside a JSON string
// (decoding one cost 1.5 s and a second copy of the table). An answer is
// made whole before it is written, so that no table is held while a
// client reads (or does not): the copies of big tables are bounded by the
// answer slots (answerSlot) instead.

// maxTableBytes bounds a table sent as text (64 MiB was the JSON body's
// bound; a million linear targets with long paths is about 50 MB).
const maxTableBytes = 256 << 20

// streamTimeout bounds how long an answer may take to write, and so how
// long a client that stops reading holds its answer slot and the copy in
// it. Every JSON answer has it too (writeJSON).
const streamTimeout = 30 * time.Second

// answerTimeout is streamTimeout, in nanoseconds; tests shorten it.
var answerTimeout atomic.Int64

func init() { answerTimeout.Store(int64(streamTimeout)) }

// answerDeadline is when an answer started now must have been written.
func answerDeadline() time.Time { return time.Now().Add(time.Duration(answerTimeout.Load())) }

// isText reports whether the request's body is a plain-text table.
func isText(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == controlapi.TextTable
}

// readTable reads a plain-text table body, or answers 400 and returns
// false. The text is the bytes read, not a copy of them: a 60 MB string
// made from them would be 60 MB more of fresh memory to touch, and
// garbage. Nothing writes to the buffer after.
func readTable(w http.ResponseWriter, r *http.Request) (string, bool) {
	b, err := table.ReadText(http.MaxBytesReader(w, r.Body, maxTableBytes), min(r.ContentLength, maxTableBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, controlapi.Error{Error: "bad request: reading the table: " + err.Error()})
		return "", false
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}

// createReq is a create's request: JSON, or the table as plain text with
// name, uuid and read_only in the query.
func createReq(w http.ResponseWriter, r *http.Request) (controlapi.CreateReq, bool) {
	var req controlapi.CreateReq
	if !isText(r) {
		return req, decodeUpTo(w, r, &req, maxJSONTable)
	}
	q := r.URL.Query()
	req.Name, req.UUID, req.ReadOnly = q.Get("name"), q.Get("uuid"), q.Get("read_only") == "1"
	var ok bool
	req.Table, ok = readTable(w, r)
	return req, ok
}

// loadReq is a load's table: JSON, or plain text.
func loadReq(w http.ResponseWriter, r *http.Request) (string, bool) {
	if isText(r) {
		return readTable(w, r)
	}
	var req controlapi.TableText
	ok := decodeUpTo(w, r, &req, maxJSONTable)
	return req.Table, ok
}

// serveTable answers GET .../table: with ?format=text the table's text
// itself, written from the table as it goes; else the JSON TableText.
// Keys are shown as dmsetup shows them (zeros) unless ?showkeys=1.
func (d *daemon) serveTable(w http.ResponseWriter, r *http.Request, m *managed) {
	slot := table.Live
	if r.URL.Query().Get("inactive") == "1" {
		slot = table.Inactive
	}
	showKeys := r.URL.Query().Get("showkeys") == "1"
	if r.URL.Query().Get("format") != "text" {
		release, ok := d.answerSlot(w, r, m, slot)
		if !ok {
			return
		}
		defer release()
		out := controlapi.TableText{Name: m.name()}
		m.dev.View(slot, func(t *table.Table) error { out.Table = t.Shown(showKeys); return nil })
		reply(w, out)
		return
	}
	// The text is made whole before the first write, and the table let
	// go: a client that does not read would otherwise hold the table
	// (a suspend would wait for it, and a swap's destroy) until the write
	// deadline. A big table's copy waits for an answer slot, as the JSON's.
	release, ok := d.answerSlot(w, r, m, slot)
	if !ok {
		return
	}
	defer release()
	var text bytes.Buffer
	// No table in the slot: an empty text, as the JSON's empty string.
	m.dev.View(slot, func(t *table.Table) error { return t.WriteShown(&text, showKeys) })
	http.NewResponseController(w).SetWriteDeadline(answerDeadline())
	w.Header().Set("Content-Type", controlapi.TextTable)
	if _, err := text.WriteTo(w); err != nil {
		// Mid-stream: the status is sent; the client sees the cut.
		d.log.Debug("writing a table", "device", m.name(), "err", err)
	}
}

// serveStatus answers GET .../status with the DeviceStatus JSON, made
// whole before the first write, with the table let go (see serveTable): a
// big table's waits for an answer slot.
func (d *daemon) serveStatus(w http.ResponseWriter, r *http.Request, m *managed) {
	release, ok := d.answerSlot(w, r, m, table.Live)
	if !ok {
		return
	}
	defer release()
	name, _ := json.Marshal(m.name())
	b := fmt.Appendf(nil, "{\n  \"name\": %s,\n  \"targets\": [", name)
	m.dev.View(table.Live, func(t *table.Table) error {
		st := t.Status()
		for i := range t.Len() {
			sep := ",\n    "
			if i == 0 {
				sep = "\n    "
			}
			b = appendStatusLine(append(b, sep...), t.Head(i), st[i])
		}
		return nil
	})
	b = append(b, "\n  ]\n}\n"...)
	http.NewResponseController(w).SetWriteDeadline(answerDeadline())
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(b); err != nil {
		d.log.Debug("writing a status", "device", m.name(), "err", err)
	}
}

// appendStatusLine appends the JSON of one controlapi.StatusLine, as
// json.Marshal would write it, at a fraction of its cost (a million-target
// status took a second in json.Marshal alone).
func appendStatusLine(b []byte, l table.Line, status string) []byte {
	b = append(b, `{"start":`...)
	b = strconv.AppendUint(b, l.Start, 10)
	b = append(b, `,"length":`...)
	b = strconv.AppendUint(b, l.Length, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, l.Type)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, status)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: printable ASCII as it is,
// anything else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
