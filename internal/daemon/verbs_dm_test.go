package daemon

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// Waits are bounded: each holds a control connection, which every other
// verb needs too, so past maxWaits a wait is refused at once (503) rather
// than queued; a slot given back takes the next one.
func TestWaitsAreBounded(t *testing.T) {
	td := startTestDaemon(t, t.TempDir())
	if _, err := td.call("create", "c", "--table", "0 8 zero"); err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.rename(context.Background(), "c", "d"); err != nil { // event 1
		t.Fatal(err)
	}
	for i := 0; i < maxWaits; i++ {
		td.d.waits <- struct{}{} // as maxWaits waits in progress
	}
	c := controlapi.New(td.control)
	q := url.Values{"after": {"0"}, "poll": {"1s"}}
	var info controlapi.DeviceInfo
	err := c.Call(http.MethodGet, "/v1/devices/d/wait", q, nil, &info)
	if err == nil || !strings.Contains(err.Error(), "too many waits") {
		t.Fatalf("a wait past the bound: %v, want refused", err)
	}
	<-td.d.waits
	if err := c.Call(http.MethodGet, "/v1/devices/d/wait", q, nil, &info); err != nil || info.EventNumber == 0 {
		t.Fatalf("a wait within the bound: %+v %v", info, err)
	}
	if err := c.Call(http.MethodGet, "/v1/devices/d/wait", url.Values{"after": {"x"}}, nil, &info); err == nil {
		t.Fatal("a wait with a bad query was answered")
	}
}

// A create asked for no table and given one is refused, and makes nothing.
func TestCreateNoTableWithATableRefused(t *testing.T) {
	td := startTestDaemon(t, t.TempDir())
	c := controlapi.New(td.control)
	var info controlapi.DeviceInfo
	err := c.Call(http.MethodPost, "/v1/devices", nil, controlapi.CreateReq{Name: "x", Table: "0 8 zero\n", NoTable: true}, &info)
	if err == nil || !strings.Contains(err.Error(), "without one") {
		t.Fatalf("create with no_table and a table: %v", err)
	}
	if _, err := td.call("info", "x"); err == nil {
		t.Fatal("the refused create left a device")
	}
}
