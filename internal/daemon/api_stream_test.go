package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
)

// A table sent as plain text (create and load) is the device's table, and
// comes back the same as streamed text and in the JSON answer; a bad line
// in a text body is refused as in a JSON one, and the device is unchanged.
func TestTableAsPlainText(t *testing.T) {
	td := startTestDaemon(t, "")
	c := controlapi.New(td.control)
	text := "0 8 zero\n8 8 error\n"
	q := url.Values{"name": {"p"}, "uuid": {"u-1"}, "read_only": {"1"}}
	var info controlapi.DeviceInfo
	if err := c.CallBody(http.MethodPost, "/v1/devices", q, controlapi.TextTable, strings.NewReader(text), &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "p" || info.UUID != "u-1" || !info.ReadOnly || info.Sectors != 16 {
		t.Fatalf("created from text: %+v", info)
	}
	if got := tableText(t, c, "p", nil); got != text {
		t.Fatalf("streamed table %q, want %q", got, text)
	}
	if got := td.ok(t, "table", "p"); got != text {
		t.Fatalf("JSON table %q, want %q", got, text)
	}
	err := c.CallBody(http.MethodPost, "/v1/devices/p/load", nil, controlapi.TextTable, strings.NewReader("0 8 zero\n9 8 zero\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad text table: %v", err)
	}
	if err := c.CallBody(http.MethodPost, "/v1/devices/p/load", nil, controlapi.TextTable, strings.NewReader("0 32 zero\n"), nil); err != nil {
		t.Fatal(err)
	}
	if got := tableText(t, c, "p", url.Values{"inactive": {"1"}}); got != "0 32 zero\n" {
		t.Fatalf("inactive table %q", got)
	}
	if got := tableText(t, c, "p", nil); got != text {
		t.Fatalf("live table after a load %q, want %q", got, text)
	}
}

func tableText(t *testing.T, c *controlapi.Client, name string, q url.Values) string {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q.Set("format", "text")
	body, err := c.Open(http.MethodGet, "/v1/devices/"+name+"/table", q, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The streamed status is the DeviceStatus JSON: every target, in order,
// and an empty list for a device without a live table.
func TestStatusStreamedIsJSON(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "s", "--table", "0 8 zero", "--table", "8 8 error", "--table", "16 4 zero")
	c := controlapi.New(td.control)
	var st controlapi.DeviceStatus
	if err := c.Call(http.MethodGet, "/v1/devices/s/status", nil, nil, &st); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	want := `{"name":"s","targets":[{"start":0,"length":8,"type":"zero","status":""},{"start":8,"length":8,"type":"error","status":""},{"start":16,"length":4,"type":"zero","status":""}]}`
	if string(b) != want {
		t.Fatalf("status %s\nwant   %s", b, want)
	}
}

// The hand-made status line is byte for byte what json.Marshal writes,
// whatever a target's type or status holds.
func TestAppendStatusLineIsJSONMarshal(t *testing.T) {
	for _, s := range []string{"", "2 /a /b 1 AA", `say "hi"`, `back\slash`, "tab\there", "<&>", "é\u2028x", "\x00\x7f", string([]byte{0xff})} {
		l := table.Line{Start: 1 << 40, Length: 8, Type: s}
		want, _ := json.Marshal(controlapi.StatusLine{Start: l.Start, Length: l.Length, Type: s, Status: s})
		if got := appendStatusLine(nil, l, s); string(got) != string(want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}
