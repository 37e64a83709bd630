package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// The control API: HTTP+JSON on a UNIX socket. Every verb but serve is a
// client of it.

func (d *daemon) infoOf(m *managed) controlapi.DeviceInfo {
	st := m.dev.Stats()
	i := controlapi.DeviceInfo{
		Name: m.name(), UUID: m.uuid, State: "ACTIVE", ReadOnly: m.dev.ReadOnly(),
		OpenConnections: m.conns.Load(), InactiveTable: m.dev.HasInactive(),
		EventNumber: st.Events.Load(), Generation: st.Generation.Load(), Attached: m.attached.Load(),
	}
	if m.dev.Suspended() {
		i.State = "SUSPENDED"
	}
	if reason := m.broken.Load(); reason != nil {
		i.State, i.Broken = "BROKEN", *reason
	}
	if reason := m.lostInactive.Load(); reason != nil {
		i.InactiveLost = *reason
	}
	m.dev.View(table.Live, func(t *table.Table) error {
		i.LiveTable = true
		i.Holders = t.Holders() - 1 // not counting ourselves
		i.SizeBytes = t.Size()
		i.Sectors = t.Sectors()
		i.Targets = t.Len()
		return nil
	})
	return i
}

// apiHandler routes the control API.
func (d *daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	d.queryRoutes(mux)
	d.verbRoutes(mux)
	d.attachRoutes(mux)
	return mux
}

// queryRoutes are the control API's reads: version, devices, status, tables.
func (d *daemon) queryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, controlapi.Version(d.version))
	})
	mux.HandleFunc("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		out := []controlapi.TargetType{}
		for _, t := range targets.Types() {
			v := fmt.Sprintf("%d.%d.%d", t.Version[0], t.Version[1], t.Version[2])
			out = append(out, controlapi.TargetType{Name: t.Name, Version: v, Syntax: t.Syntax, Summary: t.Summary})
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		out := []controlapi.DeviceInfo{}
		for _, m := range d.list() {
			out = append(out, d.infoOf(m))
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /v1/devices/{name}", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		reply(w, d.infoOf(m))
	}))
	mux.HandleFunc("GET /v1/devices/{name}/status", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		d.serveStatus(w, r, m)
	}))
	mux.HandleFunc("GET /v1/devices/{name}/table", d.withDevice(d.serveTable))
	mux.HandleFunc("GET /v1/devices/{name}/deps", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		reply(w, d.depsOf(m))
	}))
	mux.HandleFunc("GET /v1/devices/{name}/wait", func(w http.ResponseWriter, r *http.Request) {
		after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		poll, perr := time.ParseDuration(r.URL.Query().Get("poll"))
		if err != nil || perr != nil || poll <= 0 {
			writeJSON(w, http.StatusBadRequest, controlapi.Error{Error: "bad request: wait takes after=N and poll=DURATION"})
			return
		}
		m, err := d.waitEvent(r.Context(), r.PathValue("name"), after, poll)
		replyInfo(w, d, m, err)
	})
}

// verbRoutes are the control API's verbs, each a call of one daemon verb.
func (d *daemon) verbRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		release, ok := d.uploadSlot(w, r)
		if !ok {
			return
		}
		defer release()
		req, ok := createReq(w, r)
		if !ok {
			return
		}
		create := d.create
		if req.NoTable {
			create = d.createEmpty
		}
		m, err := create(req.Name, req.Table, req.UUID, req.ReadOnly)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/load", func(w http.ResponseWriter, r *http.Request) {
		release, ok := d.uploadSlot(w, r)
		if !ok {
			return
		}
		defer release()
		text, ok := loadReq(w, r)
		if !ok {
			return
		}
		m, err := d.load(r.Context(), r.PathValue("name"), text)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/resume", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := opContext(r)
		defer cancel()
		m, err := d.resume(ctx, r.PathValue("name"), r.URL.Query().Get("live") == "1")
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/suspend", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := opContext(r)
		defer cancel()
		m, err := d.suspend(ctx, r.PathValue("name"), r.URL.Query().Get("noflush") == "1")
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/wipe_table", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := opContext(r)
		defer cancel()
		m, err := d.wipeTable(ctx, r.PathValue("name"))
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/clear", func(w http.ResponseWriter, r *http.Request) {
		m, err := d.clear(r.Context(), r.PathValue("name"))
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/rename", func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.RenameReq
		if !decode(w, r, &req) {
			return
		}
		m, err := d.rename(r.Context(), r.PathValue("name"), req.NewName)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/message", d.withDevice(d.serveMessage))
	mux.HandleFunc("DELETE /v1/devices/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := d.remove(r.Context(), r.PathValue("name"), r.URL.Query().Get("force") == "1"); err != nil {
			fail(w, err)
			return
		}
		reply(w, controlapi.Removed{Removed: r.PathValue("name")})
	})
}

// withDevice runs f with the device the request's path names, or answers
// its error.
func (d *daemon) withDevice(f func(w http.ResponseWriter, r *http.Request, m *managed)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := d.get(r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		f(w, r, m)
	}
}

// opContext bounds a suspend's or resume's wait for in-flight I/O.
func opContext(r *http.Request) (context.Context, context.CancelFunc) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		if t, err := time.ParseDuration(s); err == nil && t > 0 {
			timeout = t
		}
	}
	return context.WithTimeout(r.Context(), timeout)
}

// replyInfo answers a verb with the info of the device it acted on (not
// looked up again by name: a concurrent rename or remove may have taken
// the name since), or with its error.
func replyInfo(w http.ResponseWriter, d *daemon, m *managed, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, d.infoOf(m))
}

// decode reads a verb's JSON body of at most maxVerbBody bytes into v, or
// answers the error and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeUpTo(w, r, v, maxVerbBody)
}

// decodeUpTo is decode with a bound of max bytes (a table sent as JSON
// has maxJSONTable).
func decodeUpTo(w http.ResponseWriter, r *http.Request, v any, max int64) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		code := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			code = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, code, controlapi.Error{Error: "bad request: " + err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) { writeJSON(w, http.StatusOK, v) }

func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var le *table.LineError
	switch {
	case errors.Is(err, errNoDevice):
		code = http.StatusNotFound
	case errors.Is(err, errExists), errors.Is(err, errBusy), errors.Is(err, errUUIDInUse), errors.Is(err, errBroken),
		errors.Is(err, errInactivePresent), errors.Is(err, errNoLiveTable):
		code = http.StatusConflict
	case errors.As(err, &le), errors.Is(err, errBadName), errors.Is(err, errBadUUID), errors.Is(err, errNoTable), errors.Is(err, errTableWithNoTable),
		errors.Is(err, table.ErrEmpty), errors.Is(err, table.ErrNoTable), errors.Is(err, targets.ErrDeviceTooSmall),
		errors.Is(err, errBadAttach):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, errTooManyWaits):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, controlapi.Error{Error: strings.TrimPrefix(err.Error(), "table: ")})
}

// writeJSON answers with v. A client that stops reading is cut off after
// streamTimeout, as a stream's is: the handler and what it holds (a big
// table's text) do not wait on it, nor does a shutdown.
func writeJSON(w http.ResponseWriter, code int, v any) {
	http.NewResponseController(w).SetWriteDeadline(answerDeadline())
	w.Header().Set("Content-Type", "application/json")
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // a reply type that cannot be encoded: a bug, said as one
		code = http.StatusInternalServerError
		b, _ = json.Marshal(controlapi.Error{Error: "encoding the reply: " + err.Error()})
	}
	w.WriteHeader(code)
	// A write that fails is a client that hung up (or did not read within
	// answerDeadline): there is no one left to tell. Before, it was printed
	// to stdout, outside the log and its level, once a hung-up client.
	w.Write(append(b, '\n'))
}
