package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// message posts one message and returns the reply, or the daemon's error.
func (td *testDaemon) message(name string, sector uint64, words ...string) (string, error) {
	var resp controlapi.MessageResp
	err := controlapi.New(td.control).Call(http.MethodPost, "/v1/devices/"+name+"/message", nil,
		controlapi.MessageReq{Sector: sector, Args: words}, &resp)
	return resp.Reply, err
}

// messageCode posts one message with a plain HTTP client and returns the
// answer's status code and body.
func (td *testDaemon) messageCode(t *testing.T, name string, req controlapi.MessageReq) (int, string) {
	t.Helper()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", td.control)
	}}}
	body, _ := json.Marshal(req)
	resp, err := c.Post("http://gdm/v1/devices/"+name+"/message", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e controlapi.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// A dust device driven over the control API as dmsetup message drives
// dm-dust: replies come back, an enabled bad block fails an NBD read with
// EIO, and refusals are 400 with the target's or table's text.
func TestMessageDust(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	b := testkit.Sparse(t, td.dir, "b.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 dust "+a+" 0 512", "--table", "2048 2048 linear "+b+" 0")
	must := func(want string, sector uint64, words ...string) {
		t.Helper()
		if got, err := td.message("d", sector, words...); err != nil || got != want {
			t.Fatalf("message %q: %q, %v; want %q", words, got, err, want)
		}
	}
	must("", 0, "addbadblock", "60")
	must("dust_query_block: block 60 found in badblocklist", 100, "queryblock", "60")
	must("countbadblocks: 1 badblock(s) found", 2047, "countbadblocks")
	must("", 0, "enable")
	var st controlapi.DeviceStatus
	controlapi.New(td.control).Call(http.MethodGet, "/v1/devices/d/status", nil, nil, &st)
	if len(st.Targets) != 2 || st.Targets[0].Status != a+" fail_read_on_bad_block verbose" {
		t.Fatalf("status: %+v", st)
	}

	n := dialNBD(t, filepath.Join(td.dir, "nbd.sock"), "d")
	if errno, _, err := n.do(0, 60*512, 512, nil); err != nil || errno != 5 {
		t.Fatalf("NBD read of bad block 60: errno %d, %v; want 5 (EIO)", errno, err)
	}
	if errno, _, err := n.do(0, 61*512, 512, nil); err != nil || errno != 0 {
		t.Fatalf("NBD read of block 61: errno %d, %v", errno, err)
	}

	for _, c := range []struct {
		req  controlapi.MessageReq
		want string
	}{
		{controlapi.MessageReq{Sector: 2048, Args: []string{"addbadblock", "1"}}, "target 1 (linear): targets: target type takes no messages"},
		{controlapi.MessageReq{Sector: 4096, Args: []string{"countbadblocks"}}, "sector 4096 outside the table (4096 sectors)"},
		{controlapi.MessageReq{Sector: 0, Args: []string{"frob"}}, "dust: unrecognized message 'frob' received"},
		{controlapi.MessageReq{Sector: 0, Args: []string{"addbadblock", "60"}}, "dust: dust_add_block: block 60 already in badblocklist"},
		{controlapi.MessageReq{Sector: 0, Args: []string{"addbadblock", "2049"}}, "dust: selected block value out of range"},
		{controlapi.MessageReq{Sector: 0}, "bad message"},
	} {
		code, msg := td.messageCode(t, "d", c.req)
		if code != http.StatusBadRequest || !strings.Contains(msg, c.want) || strings.HasPrefix(msg, "table: ") {
			t.Errorf("message %+v: %d %q; want 400 saying %q", c.req, code, msg, c.want)
		}
	}
	if code, msg := td.messageCode(t, "nope", controlapi.MessageReq{Args: []string{"enable"}}); code != http.StatusNotFound || !strings.Contains(msg, "no such device") {
		t.Fatalf("message to no device: %d %q", code, msg)
	}
}

// Messages change nothing saved: after a restart the dust target is a
// new one, in bypass mode with an empty list, as a new dm table is.
func TestMessageStateNotSaved(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 dust "+a+" 0 512")
	if _, err := td.message("d", 0, "addbadblock", "7"); err != nil {
		t.Fatal(err)
	}
	td.message("d", 0, "enable")
	td.Shutdown()
	td = startTestDaemon(t, dir)
	if got, err := td.message("d", 0, "listbadblocks"); err != nil || got != "No blocks in badblocklist" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
	var st controlapi.DeviceStatus
	controlapi.New(td.control).Call(http.MethodGet, "/v1/devices/d/status", nil, nil, &st)
	if len(st.Targets) != 1 || st.Targets[0].Status != a+" bypass verbose" {
		t.Fatalf("status after restart: %+v", st)
	}
}
