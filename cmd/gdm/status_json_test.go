package main

import (
	"encoding/json"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// gdm status --json passes the daemon's JSON through: one device's object
// when named, a list of every device's otherwise, each decoding to what
// the text form says.
func TestStatusJSON(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "a", "--table", "0 8 zero", "--table", "8 8 error")
	td.ok(t, "create", "b", "--table", "0 16 zero")
	var one controlapi.DeviceStatus
	if out := td.ok(t, "status", "a", "--json"); json.Unmarshal([]byte(out), &one) != nil {
		t.Fatalf("not one device's status:\n%s", out)
	}
	if one.Name != "a" || len(one.Targets) != 2 || one.Targets[1].Type != "error" || one.Targets[1].Start != 8 {
		t.Fatalf("status a: %+v", one)
	}
	var all []controlapi.DeviceStatus
	if out := td.ok(t, "status", "--json"); json.Unmarshal([]byte(out), &all) != nil {
		t.Fatalf("not a list of statuses:\n%s", out)
	}
	if len(all) != 2 || all[0].Name != "a" || all[1].Name != "b" || len(all[1].Targets) != 1 || all[1].Targets[0].Length != 16 {
		t.Fatalf("status of all: %+v", all)
	}
}
