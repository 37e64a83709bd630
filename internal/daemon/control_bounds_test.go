package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// A limitListener accepts no more than its slots: a third client of a
// two-slot listener is accepted only once one of the first two closes.
func TestLimitListenerWaitsForASlot(t *testing.T) {
	inner, err := net.Listen("unix", filepath.Join(t.TempDir(), "l.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("unix", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	third := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		third <- c
	}()
	// The third client is in the backlog already; a listener without the
	// limit hands it over at once.
	select {
	case <-third:
		t.Fatal("a third connection was accepted with two open on a two-slot listener")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close gives back nothing more
	if c := <-third; c == nil {
		t.Fatal("no third connection after the first closed")
	}
	if n := len(l.slots); n != 2 {
		t.Fatalf("%d slots taken, want 2", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}

// A full listener makes room by closing an idle kept-alive connection:
// clients that leave theirs open (one http.Transport each) do not lock
// out the next. Before and after, the others' requests are served.
func TestLimitListenerReclaimsIdle(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "l.sock")
	inner, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ConnState: l.track}
	go srv.Serve(l)
	defer srv.Close()
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
	}
	for i := range 5 { // each keeps its connection open, idle
		resp, err := client().Get("http://gdm/")
		if err != nil {
			t.Fatalf("client %d of a two-connection listener: %v", i+1, err)
		}
		resp.Body.Close()
	}
}

// Clients announcing big tables and sending nothing hold at most
// maxBigUploads reads at once: the others wait for a slot before a buffer
// of their announced size is made. Unbounded, each would hold
// maxTableBytes at once.
func TestBigUploadsBounded(t *testing.T) {
	td := startTestDaemon(t, "")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const clients = 2 * maxBigUploads
	for i := range clients {
		sendWithoutReading(t, td, fmt.Sprintf("POST /v1/devices?name=h%d HTTP/1.1\r\nHost: gdm\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			i, controlapi.TextTable, maxTableBytes))
	}
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("%d big uploads admitted of %d sent", maxBigUploads, clients),
		func() bool { return len(td.d.uploads) == maxBigUploads })
	// The waiting ones must not allocate: give them the time they would
	// need to (unbounded, all 8 buffers appear within milliseconds).
	limit := uint64(maxBigUploads+1) * maxTableBytes
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		runtime.ReadMemStats(&ms)
		if grown := ms.HeapAlloc - min(base, ms.HeapAlloc); grown > limit {
			t.Fatalf("%d clients announcing %d MiB tables made the heap grow by %d MiB (bound: %d uploads)",
				clients, maxTableBytes>>20, grown>>20, maxBigUploads)
		}
	}
	// Small requests never wait for a slot.
	if _, err := td.call("create", "small", "--table", "0 8 zero"); err != nil {
		t.Fatalf("a small create while big uploads wait: %v", err)
	}
}

// shortAnswer is the answers' write timeout in tests that wait for it.
const shortAnswer = 200 * time.Millisecond

func shortAnswerTimeout(t *testing.T) {
	answerTimeout.Store(int64(shortAnswer))
	t.Cleanup(func() { answerTimeout.Store(int64(streamTimeout)) })
}

// sendWithoutReading sends request on a control connection of its own,
// which it never reads, and closes when the test ends.
func sendWithoutReading(t *testing.T, td *testDaemon, request string) {
	t.Helper()
	conn, err := net.Dial("unix", td.control)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprint(conn, request)
}

// stackNames reports whether some goroutine's stack names fn now.
func stackNames(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// bigTable creates a device whose table text is several MB, more than a
// socket holds, and returns its name.
func bigTable(t *testing.T, td *testDaemon) string {
	t.Helper()
	var b strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&b, "%d 8 zero\n", i*8)
	}
	c := controlapi.New(td.control)
	if err := c.CallBody(http.MethodPost, "/v1/devices", map[string][]string{"name": {"big"}}, controlapi.TextTable, strings.NewReader(b.String()), nil); err != nil {
		t.Fatal(err)
	}
	return "big"
}

// A client that asks for a big table as JSON and stops reading is cut off
// after streamTimeout: the handler does not stay blocked holding the text.
func TestJSONAnswerHasWriteDeadline(t *testing.T) {
	shortAnswerTimeout(t)
	td := startTestDaemon(t, "")
	name := bigTable(t, td)
	sendWithoutReading(t, td, "GET /v1/devices/"+name+"/table HTTP/1.1\r\nHost: gdm\r\n\r\n")
	testkit.WaitFor(t, 10*time.Second, "the JSON table answer starts", func() bool { return stackNames("(*daemon).serveTable") })
	testkit.WaitFor(t, 10*time.Second, "the JSON table answer to a client that does not read ends at its write deadline",
		func() bool { return !stackNames("(*daemon).serveTable") })
}

// A shutdown flushes and closes the tables even when a control client has
// stopped reading its answer: control requests get a short grace, not the
// whole --shutdown-timeout.
func TestShutdownNotHeldByStuckControlClient(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.ShutdownWait = 3 * time.Second
	td := startWith(t, dir, cfg)
	name := bigTable(t, td)
	sendWithoutReading(t, td, "GET /v1/devices/"+name+"/table?format=text HTTP/1.1\r\nHost: gdm\r\n\r\n")
	testkit.WaitFor(t, 10*time.Second, "the table stream starts", func() bool { return stackNames("WriteShown") })
	if err := td.Shutdown(); err != nil {
		t.Fatalf("shutdown with a control client that does not read: %v", err)
	}
}

// The JSON body of a verb that takes no table (message, rename, attach)
// is small: clients sending huge ones make the daemon hold at most
// maxVerbBody of each. Before, each could hold 64 MiB (the bound of a
// table sent as JSON), taking no upload slot: 64 connections, 4 GiB.
func TestVerbBodiesBounded(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 8 zero")
	const clients, size = 4, 32 << 20
	junk := []byte(strings.Repeat("a", size))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	for _, path := range []string{"/v1/devices/d/message", "/v1/devices/d/rename"} {
		for range clients / 2 {
			conn, err := net.Dial("unix", td.control)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: gdm\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"args\":[\"", path, size+100)
			conn.Write(junk) // a daemon that refuses the body closes the connection: an error here is fine
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := ms.HeapAlloc - min(base, ms.HeapAlloc); grown > size {
		t.Fatalf("%d clients sending %d MiB verb bodies made the heap grow by %d MiB", clients, size>>20, grown>>20)
	}
}
