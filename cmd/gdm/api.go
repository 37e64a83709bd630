package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// The control API: HTTP+JSON on a UNIX socket. Every verb but serve is a
// client of it.

// deviceInfo is what `gdm info` shows, dmsetup info adapted.
type deviceInfo struct {
	Name            string `json:"name"`
	UUID            string `json:"uuid"`
	State           string `json:"state"`            // ACTIVE, SUSPENDED, or BROKEN (not restored)
	Broken          string `json:"broken,omitempty"` // why a BROKEN device could not be restored
	ReadOnly        bool   `json:"read_only"`
	OpenConnections int64  `json:"open_connections"`
	LiveTable       bool   `json:"live_table"`
	InactiveTable   bool   `json:"inactive_table"`
	EventNumber     uint64 `json:"event_number"`
	Generation      uint64 `json:"generation"`
	Holders         int64  `json:"holders"`
	SizeBytes       int64  `json:"size_bytes"`
	Sectors         uint64 `json:"sectors"`
}

// statusLine is one target of `gdm status`.
type statusLine struct {
	Start  uint64 `json:"start"`
	Length uint64 `json:"length"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

type deviceStatus struct {
	Name    string       `json:"name"`
	Targets []statusLine `json:"targets"`
}

type tableText struct {
	Name  string `json:"name"`
	Table string `json:"table"`
}

type createReq struct {
	Name     string `json:"name"`
	Table    string `json:"table"`
	UUID     string `json:"uuid,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

type versionInfo struct {
	Version     string   `json:"version"`
	GoVersion   string   `json:"go_version"`
	TargetTypes []string `json:"target_types"`
}

func (d *daemon) infoOf(m *managed) deviceInfo {
	st := m.dev.Stats()
	i := deviceInfo{
		Name: m.name(), UUID: m.uuid, State: "ACTIVE", ReadOnly: m.dev.ReadOnly(),
		OpenConnections: m.conns.Load(), InactiveTable: m.dev.HasInactive(),
		EventNumber: st.Events.Load(), Generation: st.Generation.Load(),
	}
	if m.dev.Suspended() {
		i.State = "SUSPENDED"
	}
	if reason := m.broken.Load(); reason != nil {
		i.State, i.Broken = "BROKEN", *reason
	}
	if t := m.dev.Acquire(false); t != nil {
		i.LiveTable = true
		i.Holders = t.Holders() - 1 // not counting ourselves
		i.SizeBytes = t.Size()
		i.Sectors = t.Sectors()
		t.Put()
	}
	return i
}

func statusOf(m *managed) deviceStatus {
	s := deviceStatus{Name: m.name(), Targets: []statusLine{}}
	if t := m.dev.Acquire(false); t != nil {
		defer t.Put()
		st := t.Status()
		for i, l := range t.Lines() {
			s.Targets = append(s.Targets, statusLine{Start: l.Start, Length: l.Length, Type: l.Type, Status: st[i]})
		}
	}
	return s
}

// apiHandler routes the control API.
func (d *daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	d.queryRoutes(mux)
	d.verbRoutes(mux)
	return mux
}

// queryRoutes are the control API's reads: version, devices, status, tables.
func (d *daemon) queryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, versionNow())
	})
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		out := []deviceInfo{}
		for _, m := range d.list() {
			out = append(out, d.infoOf(m))
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /v1/devices/{name}", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		reply(w, d.infoOf(m))
	}))
	mux.HandleFunc("GET /v1/devices/{name}/status", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		reply(w, statusOf(m))
	}))
	mux.HandleFunc("GET /v1/devices/{name}/table", d.withDevice(func(w http.ResponseWriter, r *http.Request, m *managed) {
		t := m.dev.Acquire(r.URL.Query().Get("inactive") == "1")
		out := tableText{Name: m.name()}
		if t != nil {
			out.Table = t.Text()
			t.Put()
		}
		reply(w, out)
	}))
}

// verbRoutes are the control API's verbs, each a call of one daemon verb.
func (d *daemon) verbRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		var req createReq
		if !decode(w, r, &req) {
			return
		}
		m, err := d.create(req.Name, req.Table, req.UUID, req.ReadOnly)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/load", func(w http.ResponseWriter, r *http.Request) {
		var req tableText
		if !decode(w, r, &req) {
			return
		}
		m, err := d.load(r.PathValue("name"), req.Table)
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
	mux.HandleFunc("POST /v1/devices/{name}/clear", func(w http.ResponseWriter, r *http.Request) {
		m, err := d.clear(r.PathValue("name"))
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/devices/{name}/rename", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			NewName string `json:"new_name"`
		}
		if !decode(w, r, &req) {
			return
		}
		m, err := d.rename(r.PathValue("name"), req.NewName)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("DELETE /v1/devices/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := d.remove(r.PathValue("name"), r.URL.Query().Get("force") == "1"); err != nil {
			fail(w, err)
			return
		}
		reply(w, map[string]string{"removed": r.PathValue("name")})
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

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "bad request: " + err.Error()})
		return false
	}
	return true
}

type apiError struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, v any) { writeJSON(w, http.StatusOK, v) }

func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var le *table.LineError
	switch {
	case errors.Is(err, errNoDevice):
		code = http.StatusNotFound
	case errors.Is(err, errExists), errors.Is(err, errBusy), errors.Is(err, errUUIDInUse), errors.Is(err, errBroken):
		code = http.StatusConflict
	case errors.As(err, &le), errors.Is(err, errBadName), errors.Is(err, errBadUUID), errors.Is(err, errNoTable),
		errors.Is(err, table.ErrEmpty), errors.Is(err, table.ErrNoTable), errors.Is(err, targets.ErrDeviceTooSmall):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	writeJSON(w, code, apiError{Error: strings.TrimPrefix(err.Error(), "table: ")})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Println("gdm: writing a reply:", err)
	}
}
