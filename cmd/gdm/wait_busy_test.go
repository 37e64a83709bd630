package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// busyWaitControl is a control API that refuses the first refusals waits
// as the daemon refuses one past its bound (503), then answers event
// number 1; it counts the requests.
func busyWaitControl(t *testing.T, refusals int32, calls *atomic.Int32) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices/{name}/wait", func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= refusals {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(controlapi.Error{Error: "busy: too many waits at once"})
			return
		}
		json.NewEncoder(w).Encode(controlapi.DeviceInfo{Name: "d", EventNumber: 1})
	})
	return fakeControl(t, mux)
}

// A wait turned away because the daemon serves as many waits as it will
// at once tries again until a slot is free, as dmsetup's wait has no such
// bound to fail on; with --timeout it gives up at its timeout, as a wait
// that saw no event does.
func TestWaitRetriesWhileTheDaemonIsBusy(t *testing.T) {
	var calls atomic.Int32
	sock := busyWaitControl(t, 4, &calls)
	var out, errOut bytes.Buffer
	if code := run([]string{"wait", "d", "--control", sock}, nil, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "1" {
		t.Fatalf("wait: exit %d, %q %q; want 1 once a slot is free", code, out.String(), errOut.String())
	}
	if n := calls.Load(); n != 5 {
		t.Fatalf("%d requests, want 4 refused and 1 answered", n)
	}

	sock = busyWaitControl(t, 1<<30, &calls)
	out.Reset()
	errOut.Reset()
	code := run([]string{"wait", "d", "--timeout", "200ms", "--control", sock}, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "timed out") {
		t.Fatalf("wait --timeout on a busy daemon: exit %d, %q; want 1 and timed out", code, errOut.String())
	}
}
