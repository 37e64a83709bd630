package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsExactCounts(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	b := testkit.Sparse(t, td.dir, "b.img", 1<<20)
	td.ok(t, "create", "m", "--table", "0 8 linear "+a+" 0", "--table", "8 8 error", "--table", "16 16 striped 2 8 "+a+" 8 "+b+" 0")
	m := mustGet(t, td, "m")
	ctx := context.Background()
	buf := make([]byte, 4096)
	m.exp.WriteAt(ctx, buf, 0)           // linear: ok
	m.exp.ReadAt(ctx, buf[:512], 0)      // linear: ok
	m.exp.ReadAt(ctx, buf[:512], 4096)   // error target
	m.exp.ReadAt(ctx, buf, 8192)         // striped, one chunk on leg 0
	m.exp.WriteAt(ctx, buf[:1024], 3584) // 512 on linear, 512 on error: fails
	m.exp.Flush(ctx)
	reg := newRegistry(td.d)
	want := `
# HELP gdm_device_io_operations_total I/O requests served by a device, by op.
# TYPE gdm_device_io_operations_total counter
gdm_device_io_operations_total{device="m",op="flush"} 1
gdm_device_io_operations_total{device="m",op="read"} 3
gdm_device_io_operations_total{device="m",op="write"} 2
# HELP gdm_device_io_errors_total Requests that failed, by op.
# TYPE gdm_device_io_errors_total counter
gdm_device_io_errors_total{device="m",op="flush"} 0
gdm_device_io_errors_total{device="m",op="read"} 1
gdm_device_io_errors_total{device="m",op="write"} 1
# HELP gdm_device_io_bytes_total Bytes moved (read, write) or covered (trim, zero, block_status) by successful requests.
# TYPE gdm_device_io_bytes_total counter
gdm_device_io_bytes_total{device="m",op="flush"} 0
gdm_device_io_bytes_total{device="m",op="read"} 4608
gdm_device_io_bytes_total{device="m",op="write"} 4096
# HELP gdm_target_io_operations_total Pieces of requests mapped to a target of the live table (resets when the table is swapped).
# TYPE gdm_target_io_operations_total counter
gdm_target_io_operations_total{device="m",op="read",target="0",type="linear"} 1
gdm_target_io_operations_total{device="m",op="read",target="1",type="error"} 1
gdm_target_io_operations_total{device="m",op="read",target="2",type="striped"} 1
gdm_target_io_operations_total{device="m",op="write",target="0",type="linear"} 2
gdm_target_io_operations_total{device="m",op="write",target="1",type="error"} 1
# HELP gdm_target_io_errors_total Failed pieces mapped to a target of the live table.
# TYPE gdm_target_io_errors_total counter
gdm_target_io_errors_total{device="m",op="read",target="0",type="linear"} 0
gdm_target_io_errors_total{device="m",op="read",target="1",type="error"} 1
gdm_target_io_errors_total{device="m",op="read",target="2",type="striped"} 0
gdm_target_io_errors_total{device="m",op="write",target="0",type="linear"} 0
gdm_target_io_errors_total{device="m",op="write",target="1",type="error"} 1
# HELP gdm_target_leg_io_operations_total Reads and writes sent to one leg of a striped target.
# TYPE gdm_target_leg_io_operations_total counter
gdm_target_leg_io_operations_total{device="m",leg="0",target="2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gdm_device_io_operations_total", "gdm_device_io_errors_total", "gdm_device_io_bytes_total",
		"gdm_target_io_operations_total", "gdm_target_io_errors_total", "gdm_target_leg_io_operations_total"); err != nil {
		t.Fatal(err)
	}

	// Reloads: two swaps, one refused table.
	td.ok(t, "load", "m", "--table", "0 32 linear "+a+" 0")
	td.ok(t, "resume", "m")
	td.fails(t, "line 2", "load", "m", "--table", "0 8 zero", "--table", "9 8 zero")
	td.ok(t, "load", "m", "--table", "0 16 linear "+b+" 0")
	td.ok(t, "resume", "m", "--live")
	td.ok(t, "suspend", "m")
	want = `
# HELP gdm_table_swaps_total Swaps of the inactive table into the live slot.
# TYPE gdm_table_swaps_total counter
gdm_table_swaps_total{device="m"} 3
# HELP gdm_table_generation Grows by one on every swap of the live table.
# TYPE gdm_table_generation gauge
gdm_table_generation{device="m"} 3
# HELP gdm_table_load_failures_total Tables refused by load or create (bad text, missing or small backing device).
# TYPE gdm_table_load_failures_total counter
gdm_table_load_failures_total{device="m"} 1
# HELP gdm_device_size_bytes Size of the live table.
# TYPE gdm_device_size_bytes gauge
gdm_device_size_bytes{device="m"} 8192
# HELP gdm_device_suspended 1 while the device is suspended.
# TYPE gdm_device_suspended gauge
gdm_device_suspended{device="m"} 1
# HELP gdm_table_holders Temporary holders of the live table (in-flight I/O, status calls).
# TYPE gdm_table_holders gauge
gdm_table_holders{device="m"} 0
# HELP gdm_table_destroy_waiting Tables out of their slot, waiting for holders to drain.
# TYPE gdm_table_destroy_waiting gauge
gdm_table_destroy_waiting{device="m"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gdm_table_swaps_total", "gdm_table_generation", "gdm_table_load_failures_total",
		"gdm_device_size_bytes", "gdm_device_suspended", "gdm_table_holders", "gdm_table_destroy_waiting"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(collector{td.d}, "gdm_table_drain_wait_seconds"); n != 1 {
		t.Fatalf("drain wait histogram series: %d", n)
	}
}

// promtool lints a real scrape of the running daemon.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testkit.NeedTool(t, "promtool") // Debian package prometheus
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 1024 striped 2 8 "+a+" 0 "+a+" 1024")
	m := mustGet(t, td, "d")
	m.exp.ReadAt(context.Background(), make([]byte, 8192), 0)
	resp, err := http.Get("http://" + td.addrs["metrics"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gdm_device_io_duration_seconds_bucket", "gdm_target_leg_io_bytes_total", "go_goroutines", "process_open_fds", "gdm_nbd_options_total", `gdm_nbd_read_spins_total{result="parked"}`, `gdm_nbd_tuner_switches_total{knob="pipe_write",to="on"}`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// gdm_device_requests_in_flight counts the kernel's requests to an
// attached device too: they come over the attach server's connections,
// which the gauge once never asked, so it read 0 under any load.
func TestMetricsInFlightOfAttachedDevice(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	attachedDevice(t, td)
	m := mustGet(t, td, "d")
	reg := newRegistry(td.d)
	gauge := func(v string) string {
		return "# HELP gdm_device_requests_in_flight NBD requests being worked on.\n" +
			"# TYPE gdm_device_requests_in_flight gauge\n" +
			`gdm_device_requests_in_flight{device="d"} ` + v + "\n"
	}
	td.ok(t, "suspend", "d") // the kernel's read waits in the device
	errc := make(chan error, 1)
	go func() {
		e, _, err := k.dev(0).conns[0].do(0, 0, 512, nil)
		if err == nil && e != 0 {
			err = fmt.Errorf("errno %d", e)
		}
		errc <- err
	}()
	testkit.WaitFor(t, 10*time.Second, "the kernel's read in flight", func() bool {
		return td.d.att.srv.InFlight(attachExport{m.exp}) == 1
	})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(gauge("1")), "gdm_device_requests_in_flight"); err != nil {
		t.Fatal(err)
	}
	td.ok(t, "resume", "d")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the read done", func() bool {
		return td.d.att.srv.InFlight(attachExport{m.exp}) == 0
	})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(gauge("0")), "gdm_device_requests_in_flight"); err != nil {
		t.Fatal(err)
	}
}
