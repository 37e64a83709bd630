package nbdserver

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// writeCounter counts the writes made to the connections it accepts.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, writes: &l.writes}, nil
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// LIST names every export, and the replies of many exports go out in a
// few writes of listWriteSize, not a write each.
func TestListGathersReplies(t *testing.T) {
	const n = 3000
	exports := testExports{}
	var want []string
	for i := range n {
		name := fmt.Sprintf("export-with-a-longish-name-%05d", i)
		exports[name] = newMem(512)
		want = append(want, name)
	}
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &writeCounter{Listener: ul}
	s := &Server{Exports: exports, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })

	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &client{t: t, c: nc, br: bufio.NewReader(nc)}
	c.hello(clientFixedNewstyle | clientNoZeroes)
	before := l.writes.Load()
	c.opt(optList, nil)
	got := listReplies(c)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("LIST named %d exports, want the %d served", len(got), n)
	}
	// 3000 replies of 55 bytes: 165,000 bytes, three writes.
	if w := l.writes.Load() - before; w > 4 {
		t.Errorf("LIST of %d exports took %d writes, want at most 4", n, w)
	}
}
