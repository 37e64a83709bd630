package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// fakeListing is a control API that lists devices a, b and c but has no b
// when asked for it: b was removed between the listing and its turn.
func fakeListing(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode([]controlapi.DeviceInfo{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	})
	mux.HandleFunc("GET /v1/devices/{name}/{what}", func(w http.ResponseWriter, r *http.Request) {
		n := r.PathValue("name")
		if n == "b" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(controlapi.Error{Error: `no such device "b"`})
			return
		}
		if r.PathValue("what") == "status" {
			json.NewEncoder(w).Encode(controlapi.DeviceStatus{Name: n, Targets: []controlapi.StatusLine{{Length: 8, Type: "zero"}}})
		} else if r.URL.Query().Get("format") == "text" {
			w.Write([]byte("0 8 zero\n"))
		} else {
			json.NewEncoder(w).Encode(controlapi.TableText{Name: n, Table: "0 8 zero"})
		}
	})
	return fakeControl(t, mux)
}

// fakeControl serves h as a control API on a new socket, for the test,
// and returns the socket's path.
func fakeControl(t *testing.T, h http.Handler) string {
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// `gdm status` and `gdm table` of every device leave out a device removed
// since the listing, rather than fail (and, with --json, leave half an
// array on stdout); asked for by name, a missing device still fails.
func TestListingSkipsDevicesRemovedSince(t *testing.T) {
	sock := fakeListing(t)
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"table"}, {"table", "--json"}} {
		var out, errOut bytes.Buffer
		code := run(append(args, "--control", sock), nil, &out, &errOut)
		if code != 0 {
			t.Errorf("gdm %v: exit %d (%s), want 0 with b left out", args, code, strings.TrimSpace(errOut.String()))
			continue
		}
		if strings.Contains(out.String(), `"b"`) || strings.Contains(out.String(), "b: ") {
			t.Errorf("gdm %v printed b:\n%s", args, out.String())
		}
		if args[len(args)-1] == "--json" {
			var v []json.RawMessage
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v) != 2 {
				t.Errorf("gdm %v: %d devices, %v, want a JSON list of a and c:\n%s", args, len(v), err, out.String())
			}
		} else if n := strings.Count(out.String(), "\n"); n != 2 {
			t.Errorf("gdm %v: %d lines, want a's and c's:\n%s", args, n, out.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "b", "--control", sock}, nil, &out, &errOut); code != 1 {
		t.Errorf("gdm status b: exit %d, want 1 (no such device)", code)
	}
}
