package daemon

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// The metrics listener keeps at most maxMetricsConns connections: with
// that many in the middle of a request, one more is not answered until
// one of them goes.
func TestMetricsConnectionsAreBounded(t *testing.T) {
	td := startTestDaemon(t, t.TempDir())
	addr := td.addrs["metrics"]
	var held []net.Conn
	for i := 0; i < maxMetricsConns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /metrics HTTP/1.1\r\n")) // a request begun, not idle
		held = append(held, c)
	}
	late, err := net.Dial("tcp", addr) // the kernel accepts it; gdm does not take it
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
	late.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	br := bufio.NewReader(late)
	if _, err := http.ReadResponse(br, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection past the bound was served: %v", err)
	}
	held[0].Close()
	late.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on the test
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after a slot was freed: %v %v", resp, err)
	}
	resp.Body.Close()
}

// deadlineRecorder records the write deadline a handler sets.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error { d.deadline = t; return nil }

// Every /metrics answer must be written within metricsWriteTimeout.
func TestMetricsAnswerHasAWriteDeadline(t *testing.T) {
	h := metricsHandler(newDaemon(slog.New(slog.DiscardHandler), &stateStore{dir: t.TempDir()}, false), false)
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	before := time.Now()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK || w.deadline.Before(before.Add(metricsWriteTimeout)) || w.deadline.After(time.Now().Add(metricsWriteTimeout)) {
		t.Fatalf("answer %d, write deadline %v after the request; want %v", w.Code, w.deadline.Sub(before), metricsWriteTimeout)
	}
}
