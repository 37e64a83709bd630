package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/loopport"
)

// daemon is one `gdm serve` run under measurement.
type daemon struct {
	bin, dir, control, metrics string
	cmd                        *exec.Cmd
	api                        *controlapi.Client
}

// start runs gdm serve with its state, sockets and log under dir and
// waits until its control API answers.
func start(bin, dir string) (*daemon, error) {
	metrics, err := loopport.Free()
	if err != nil {
		return nil, err
	}
	d := &daemon{bin: bin, dir: dir, control: filepath.Join(dir, "control.sock"), metrics: metrics}
	log, err := os.Create(filepath.Join(dir, "gdm.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	d.cmd = exec.Command(bin, "serve", "--control", d.control, "--nbd-socket", filepath.Join(dir, "nbd.sock"),
		"--state-dir", filepath.Join(dir, "state"), "--metrics-listen", metrics, "--log-level", "warn")
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	d.api = controlapi.New(d.control)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if err := d.api.Call(http.MethodGet, "/v1/version", nil, nil, nil); err == nil {
			return d, nil
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling a process we do not control
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	return nil, fmt.Errorf("gdm serve did not answer (see %s)", log.Name())
}

// stop sends SIGTERM and returns how long the daemon took to exit.
func (d *daemon) stop() (time.Duration, error) {
	t0 := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	err := d.cmd.Wait()
	return time.Since(t0), err
}

// rss is the daemon's resident set, in bytes.
func (d *daemon) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// get fetches path (control API) and returns the reply's size.
func (d *daemon) get(path string) (int64, error) {
	body, err := d.api.Open(http.MethodGet, path, nil, "", nil)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.Copy(io.Discard, body)
}

// scrape fetches /metrics and returns its bytes and lines.
func (d *daemon) scrape() (int64, int, error) {
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var n int64
	lines := 0
	br := bufio.NewReaderSize(resp.Body, 1<<16)
	for {
		s, err := br.ReadSlice('\n')
		n += int64(len(s))
		if len(s) > 0 && s[len(s)-1] == '\n' {
			lines++
		}
		if err == io.EOF {
			return n, lines, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return n, lines, err
		}
	}
}

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// gauge is the value of an unlabelled series of a scrape (0 if absent).
func (d *daemon) gauge(name string) float64 {
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
