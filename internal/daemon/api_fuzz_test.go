package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// FuzzControlAPI throws arbitrary requests at the control API. Whatever
// comes, the daemon answers with a JSON body and a status from the API's
// set, never panics, and what it lists stays consistent with its state
// files: a device is listed exactly when its state file exists.
//
//	go test -fuzz FuzzControlAPI ./internal/daemon/
func FuzzControlAPI(f *testing.F) {
	for _, s := range []struct{ method, path, body string }{
		{"POST", "/v1/devices", `{"name":"a","table":"0 8 zero"}`},
		{"POST", "/v1/devices", `{"name":"b","table":"0 8 zero\n8 8 error","uuid":"u-1","read_only":true}`},
		{"POST", "/v1/devices", `{"name":"..","table":"0 8 zero"}`},
		{"POST", "/v1/devices", `{"name":"c","table":"0 8 zero","uuid":"a\u0000b"}`},
		{"POST", "/v1/devices", `{"name":"d","table":"0 8 striped 2 4 /nonexistent 0 /nonexistent 0"}`},
		{"POST", "/v1/devices/a/load", `{"table":"0 16 zero"}`},
		{"POST", "/v1/devices/a/resume?live=1", ``},
		{"POST", "/v1/devices/a/suspend?noflush=1&timeout=1ms", ``},
		{"POST", "/v1/devices/a/clear", ``},
		{"POST", "/v1/devices/a/rename", `{"new_name":"z"}`},
		{"DELETE", "/v1/devices/a?force=1", ``},
		{"GET", "/v1/devices/a/table?inactive=1", ``},
		{"GET", "/v1/devices/a/status", ``},
		{"GET", "/v1/devices", ``},
		{"POST", "/v1/devices", `{"name":"e","table":"0 8 zero","extra":1}`},
		{"POST", "/v1/devices", `{"name":`},
	} {
		f.Add(s.method, s.path, s.body)
	}
	td := startFuzzDaemon(f)
	h := td.d.apiHandler()
	statuses := map[int]bool{200: true, 400: true, 404: true, 405: true, 409: true, 413: true, 422: true, 500: true, 504: true}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			return
		}
		req, err := http.NewRequest(method, "http://gdm"+path, strings.NewReader(body))
		if err != nil {
			return // not a request net/http would hand the handler
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !statuses[rec.Code] {
			t.Fatalf("%s %s %q: status %d", method, path, body, rec.Code)
		}
		if rec.Code != 404 && rec.Code != 405 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s %q: %d with a body that is not JSON: %q", method, path, body, rec.Code, rec.Body.String())
		}
		for _, m := range td.d.list() {
			if _, err := os.Stat(td.d.state.fileOf(m.id)); err != nil {
				t.Fatalf("%s %s %q: device %s is listed without a state file: %v", method, path, body, m.name(), err)
			}
		}
		checkStateFiles(t, td, fmt.Sprintf("%s %s %q", method, path, body))
	})
}

// startFuzzDaemon starts one daemon for a whole fuzz run.
func startFuzzDaemon(f *testing.F) *testDaemon {
	dir := f.TempDir()
	cfg := Config{Control: dir + "/control.sock", StateDir: dir + "/state", LogLevel: slog.LevelError, ShutdownWait: 10e9}
	r, err := Start(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Shutdown() })
	return &testDaemon{Running: r, dir: dir, control: cfg.Control}
}

// checkStateFiles fails unless the state directory holds one JSON file per
// device and exactly the table files the devices' definitions name.
func checkStateFiles(t *testing.T, td *testDaemon, what string) {
	t.Helper()
	named := map[string]bool{}
	for _, m := range td.d.list() {
		for _, f := range m.saved.tableFiles() {
			named[f] = true
		}
	}
	files, _ := os.ReadDir(td.d.state.devicesDir())
	jsons, tables := 0, 0
	for _, f := range files {
		switch {
		case strings.HasSuffix(f.Name(), ".json"):
			jsons++
		case named[f.Name()]:
			tables++
		default:
			t.Fatalf("%s: stray file %s in the state directory", what, f.Name())
		}
	}
	if n := len(td.d.list()); jsons != n || tables != len(named) {
		t.Fatalf("%s: %d state files and %d of %d table files for %d devices", what, jsons, tables, len(named), n)
	}
}
