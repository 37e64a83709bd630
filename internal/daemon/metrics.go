package daemon

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gdm-project/gdm/pkg/aio"
	"github.com/gdm-project/gdm/pkg/nbdserver"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Metric descriptors, declared once. The I/O path only bumps the atomics of
// pkg/table, pkg/targets and pkg/nbdserver; the collector reads them at
// scrape time.
var (
	devLabels   = []string{"device"}
	opLabels    = []string{"device", "op"}
	segLabels   = []string{"device", "target", "type", "op"}
	legLabels   = []string{"device", "target", "leg"}
	faultLabels = []string{"device", "target", "type", "kind"}

	descIOOps      = prometheus.NewDesc("gdm_device_io_operations_total", "I/O requests served by a device, by op.", opLabels, nil)
	descIOBytes    = prometheus.NewDesc("gdm_device_io_bytes_total", "Bytes moved (read, write) or covered (trim, zero, block_status) by successful requests.", opLabels, nil)
	descIOErrors   = prometheus.NewDesc("gdm_device_io_errors_total", "Requests that failed, by op.", opLabels, nil)
	descIOLatency  = prometheus.NewDesc("gdm_device_io_duration_seconds", "Time from taking the table to completing a request, by op.", opLabels, nil)
	descInFlight   = prometheus.NewDesc("gdm_device_requests_in_flight", "NBD requests being worked on.", devLabels, nil)
	descConns      = prometheus.NewDesc("gdm_device_nbd_connections", "Open NBD connections.", devLabels, nil)
	descSize       = prometheus.NewDesc("gdm_device_size_bytes", "Size of the live table.", devLabels, nil)
	descSuspended  = prometheus.NewDesc("gdm_device_suspended", "1 while the device is suspended.", devLabels, nil)
	descReadOnly   = prometheus.NewDesc("gdm_device_read_only", "1 for a read-only device.", devLabels, nil)
	descBroken     = prometheus.NewDesc("gdm_device_broken", "1 for a device that could not be restored at start (see gdm info); load and resume repair it.", devLabels, nil)
	descBadStates  = prometheus.NewDesc("gdm_state_files_unreadable", "Device state files skipped at start because they could not be read (left untouched; see the log).", nil, nil)
	descGeneration = prometheus.NewDesc("gdm_table_generation", "Grows by one on every swap of the live table.", devLabels, nil)
	descHolders    = prometheus.NewDesc("gdm_table_holders", "Temporary holders of the live table (in-flight I/O, status calls).", devLabels, nil)
	descDestroying = prometheus.NewDesc("gdm_table_destroy_waiting", "Tables out of their slot, waiting for holders to drain.", devLabels, nil)
	descSwaps      = prometheus.NewDesc("gdm_table_swaps_total", "Swaps of the inactive table into the live slot.", devLabels, nil)
	descDrainWait  = prometheus.NewDesc("gdm_table_drain_wait_seconds", "How long each table destroy waited for its holders, all devices (removed ones included).", nil, nil)
	descLoadFails  = prometheus.NewDesc("gdm_table_load_failures_total", "Tables refused by load or create (bad text, missing or small backing device).", devLabels, nil)
	descSegOps     = prometheus.NewDesc("gdm_target_io_operations_total", "Pieces of requests mapped to a target of the live table (resets when the table is swapped).", segLabels, nil)
	descSegBytes   = prometheus.NewDesc("gdm_target_io_bytes_total", "Bytes of successful pieces mapped to a target of the live table.", segLabels, nil)
	descSegErrors  = prometheus.NewDesc("gdm_target_io_errors_total", "Failed pieces mapped to a target of the live table.", segLabels, nil)
	descLegOps     = prometheus.NewDesc("gdm_target_leg_io_operations_total", "Reads and writes sent to one leg of a striped target.", legLabels, nil)
	descLegBytes   = prometheus.NewDesc("gdm_target_leg_io_bytes_total", "Bytes read or written on one leg of a striped target.", legLabels, nil)
	descLegErrors  = prometheus.NewDesc("gdm_target_leg_io_errors_total", "Failed I/O on one leg of a striped target.", legLabels, nil)
	descFaults     = prometheus.NewDesc("gdm_target_faults_total", "Requests a fault-injecting target (flakey, delay, dust) changed, by kind: read_error, write_error, write_dropped, corrupted, delayed.", faultLabels, nil)
	descFaultDelay = prometheus.NewDesc("gdm_target_fault_delay_seconds_total", "Total time a delay target held its requests back.", segLabels[:3], nil)
	descAccepted   = prometheus.NewDesc("gdm_nbd_connections_accepted_total", "NBD connections accepted.", nil, nil)
	descHandshake  = prometheus.NewDesc("gdm_nbd_handshakes_failed_total", "NBD handshakes that did not reach transmission, by reason.", []string{"reason"}, nil)
	descOptions    = prometheus.NewDesc("gdm_nbd_options_total", "NBD handshake options received, by option.", []string{"option"}, nil)
	descProtoErrs  = prometheus.NewDesc("gdm_nbd_protocol_errors_total", "Connections closed for a protocol violation (bad magic, oversized data).", nil, nil)
	descPanics     = prometheus.NewDesc("gdm_nbd_request_panics_total", "Requests that panicked (answered EIO).", nil, nil)
	descStalls     = prometheus.NewDesc("gdm_nbd_batch_stalls_total", "Request batches the stall watch found still running after a tick (1 to 4 ms), whose waiting requests were then served concurrently.", nil, nil)
	descConnPanics = prometheus.NewDesc("gdm_nbd_connection_panics_total", "Panics outside a request's handling (handshake, reading, writing replies); each closed its connection only.", nil, nil)
	descRefused    = prometheus.NewDesc("gdm_nbd_connections_refused_total", "NBD connections closed at once for a limit, by reason: global (--nbd-max-connections) or per_client.", []string{"reason"}, nil)
	descDropped    = prometheus.NewDesc("gdm_nbd_connections_dropped_total", "NBD connections closed by a timeout, by reason: idle (--nbd-idle-timeout), write_timeout (--nbd-write-timeout) or payload_timeout (--nbd-payload-timeout).", []string{"reason"}, nil)
	descOpenConns  = prometheus.NewDesc("gdm_nbd_connections", "Open NBD connections, all exports (including those in the handshake).", nil, nil)
	descInFlightB  = prometheus.NewDesc("gdm_nbd_inflight_bytes", "Bytes of NBD requests in flight across all connections (bounded by --nbd-max-inflight-bytes).", nil, nil)
	descInFlightW  = prometheus.NewDesc("gdm_nbd_inflight_waits_total", "Requests whose reader waited for the bound on bytes in flight across connections.", nil, nil)
	descInFlightDW = prometheus.NewDesc("gdm_nbd_inflight_device_waits_total", "Requests whose reader waited for its device's share of the bytes in flight (bounded by --nbd-max-inflight-bytes-per-device).", nil, nil)
	descPipes      = prometheus.NewDesc("gdm_nbd_pipes", "Pipes open for spliced reads (bounded by --nbd-max-pipes).", nil, nil)
	descPipesRef   = prometheus.NewDesc("gdm_nbd_pipe_limit_fallbacks_total", "Reads copied rather than spliced because --nbd-max-pipes pipes were open.", nil, nil)
	descMemRel     = prometheus.NewDesc("gdm_nbd_memory_releases_total", "Times memory was given back to the OS after a burst of requests ended.", nil, nil)
	descAttConns   = prometheus.NewDesc("gdm_nbd_attached_connections", "Connections of the kernel's NBD devices that gdm attach made (served apart from the listeners).", nil, nil)
	descAttPanics  = prometheus.NewDesc("gdm_nbd_attached_connection_panics_total", "Panics outside a request that ended one of those connections.", nil, nil)
	descTLS        = prometheus.NewDesc("gdm_nbd_tls_sessions_total", "NBD connections that started TLS (STARTTLS).", nil, nil)
	descSpliced    = prometheus.NewDesc("gdm_nbd_spliced_writes_total", "Asynchronous writes to a remote leg whose payload went from the client's socket into a pipe and on to the leg's socket, never copied into the daemon's memory.", nil, nil)
	descSplicedRd  = prometheus.NewDesc("gdm_nbd_spliced_reads_total", "Asynchronous reads of a remote leg whose data went from the leg's socket into a pipe and on to the client's socket, never copied into the daemon's memory and with no goroutine waiting for it.", nil, nil)
	descPipeWrites = prometheus.NewDesc("gdm_nbd_pipe_writes_total", "Writes to a local file whose payload went from the client's socket into a pipe and from the pipe into the file (splice), copied once instead of twice.", nil, nil)
	descAsync      = prometheus.NewDesc("gdm_nbd_async_requests_total", "Requests started on a remote leg or a block device (Linux AIO) and completed by its reply reader or the AIO reaper (no worker waited for them): reads and writes without FUA within one target that takes them (see the README).", nil, nil)
	descAIO        = prometheus.NewDesc("gdm_aio_requests_total", "Requests to block devices read with O_DIRECT offered to Linux AIO, by result: submitted, no_slot (all slots in flight) or refused (by the kernel); the last two were done with blocking calls instead.", []string{"result"}, nil)
	descAIOFlight  = prometheus.NewDesc("gdm_aio_requests_in_flight", "Linux AIO requests in flight on block devices (at most 1024).", nil, nil)
	descSpins      = prometheus.NewDesc("gdm_nbd_read_spins_total", "TCP reads that spun on an empty socket before parking, by result: found (a request came) or parked.", []string{"result"}, nil)
	descTuneProbe  = prometheus.NewDesc("gdm_nbd_tuner_probes_total", "Probes of the NBD connections' tuners that ran to a verdict, by knob and result: won (the flipped setting was clearly faster) or lost.", []string{"knob", "result"}, nil)
	descTuneSwitch = prometheus.NewDesc("gdm_nbd_tuner_switches_total", "Knobs the NBD connections' tuners turned (two won probes in a row), by knob and the way it went (on, off).", []string{"knob", "to"}, nil)
)

// collector turns the daemon's plain stats into metrics at scrape time.
type collector struct{ d *daemon }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIOOps, descIOBytes, descIOErrors, descIOLatency, descInFlight, descConns,
		descSize, descSuspended, descReadOnly, descBroken, descBadStates, descGeneration, descHolders, descDestroying, descSwaps, descDrainWait,
		descLoadFails, descSegOps, descSegBytes, descSegErrors, descLegOps, descLegBytes, descLegErrors,
		descFaults, descFaultDelay, descAccepted, descHandshake, descOptions, descProtoErrs, descPanics, descStalls, descAsync, descSpliced, descSplicedRd, descPipeWrites, descSpins, descTuneProbe, descTuneSwitch, descTLS, descAttConns, descAttPanics, descAIO, descAIOFlight,
		descConnPanics, descRefused, descDropped, descOpenConns, descInFlightB, descInFlightW, descInFlightDW, descPipes, descPipesRef, descMemRel} {
		ch <- d
	}
	for _, d := range snapshotDescs {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// histogram converts a table.HistogramSnapshot (per-bucket counts) into
// Prometheus' cumulative form.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h table.HistogramSnapshot, labels ...string) {
	buckets := make(map[float64]uint64, len(table.LatencyBuckets))
	var cum uint64
	for i, ub := range table.LatencyBuckets {
		if i < len(h.Counts) { // a daemon that never had a device has none
			cum += h.Counts[i]
		}
		buckets[ub.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count(), h.Sum.Seconds(), buckets, labels...)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	// A device's requests come over the listeners' connections and over
	// the kernel's (gdm attach), served apart and seen as attachExport.
	inflight, attached := c.d.nbd.InFlightByExport(), c.d.att.srv.InFlightByExport()
	for _, nd := range c.d.listNamed() {
		c.collectDevice(ch, nd.name, nd.m, inflight[nd.m.exp]+attached[attachExport{nd.m.exp}])
	}
	histogram(ch, descDrainWait, c.d.drainWait())
	st := c.d.nbd.Stats()
	gauge(ch, descBadStates, float64(c.d.unreadableStates))
	counter(ch, descAccepted, st.Accepted.Load())
	for i, name := range nbdserver.HandshakeFailureNames {
		counter(ch, descHandshake, st.HandshakeFailed[i].Load(), name)
	}
	for i := 1; i < len(st.Options); i++ {
		counter(ch, descOptions, st.Options[i].Load(), nbdserver.OptionName(i))
	}
	counter(ch, descProtoErrs, st.ProtocolErrors.Load())
	counter(ch, descPanics, st.Panics.Load())
	counter(ch, descStalls, st.Stalls.Load())
	counter(ch, descAsync, st.AsyncRequests.Load())
	aios := aio.SharedStats()
	counter(ch, descAIO, aios.Submitted, "submitted")
	counter(ch, descAIO, aios.NoSlot, "no_slot")
	counter(ch, descAIO, aios.Refused, "refused")
	gauge(ch, descAIOFlight, float64(aios.InFlight))
	counter(ch, descSpliced, st.SplicedWrites.Load())
	counter(ch, descSplicedRd, st.SplicedReads.Load())
	counter(ch, descPipeWrites, st.PipeWrites.Load())
	counter(ch, descSpins, st.SpinsFound.Load(), "found")
	counter(ch, descSpins, st.SpinsParked.Load(), "parked")
	for i, knob := range nbdserver.KnobNames {
		counter(ch, descTuneProbe, st.TunerProbes[i][0].Load(), knob, "lost")
		counter(ch, descTuneProbe, st.TunerProbes[i][1].Load(), knob, "won")
		counter(ch, descTuneSwitch, st.TunerSwitches[i][0].Load(), knob, "off")
		counter(ch, descTuneSwitch, st.TunerSwitches[i][1].Load(), knob, "on")
	}
	counter(ch, descTLS, st.TLSSessions.Load())
	counter(ch, descConnPanics, st.ConnPanics.Load())
	for i, name := range nbdserver.RefusalNames {
		counter(ch, descRefused, st.Refused[i].Load(), name)
	}
	counter(ch, descDropped, st.IdleTimeouts.Load(), "idle")
	counter(ch, descDropped, st.WriteTimeouts.Load(), "write_timeout")
	counter(ch, descDropped, st.PayloadTimeouts.Load(), "payload_timeout")
	counter(ch, descInFlightW, st.InFlightWaits.Load())
	counter(ch, descInFlightDW, st.ExportInFlightWaits.Load())
	counter(ch, descPipesRef, st.PipesRefused.Load())
	counter(ch, descMemRel, st.MemoryReleases.Load())
	g := c.d.nbd.Gauges()
	gauge(ch, descOpenConns, float64(g.Conns))
	gauge(ch, descInFlightB, float64(g.InFlightBytes))
	gauge(ch, descPipes, float64(g.Pipes))
	as := c.d.att.srv
	gauge(ch, descAttConns, float64(as.Gauges().Conns))
	counter(ch, descAttPanics, as.Stats().ConnPanics.Load())
}

// collectDevice sends one device's series. Their number is bounded (see
// scrape_bound.go): an idle device costs idleDeviceSeries
// lines; an op's counters (other than read and write) and its latency
// histogram appear once the device has seen that op.
//
// name is the device's name when the scrape listed it: a rename since
// shows in the next scrape.
func (c collector) collectDevice(ch chan<- prometheus.Metric, name string, m *managed, inflight int64) {
	dev := m.dev
	st := dev.Stats()
	io := st.IO.Snapshot()
	for op := range table.NumOps {
		seen := io.Ops[op] > 0 || io.Errors[op] > 0
		if !seen && op != table.OpRead && op != table.OpWrite {
			continue
		}
		o := op.String()
		counter(ch, descIOOps, io.Ops[op], name, o)
		counter(ch, descIOBytes, io.Bytes[op], name, o)
		counter(ch, descIOErrors, io.Errors[op], name, o)
		if c.d.timed && seen {
			histogram(ch, descIOLatency, st.Latency[op].Snapshot(), name, o)
		}
	}
	gauge(ch, descInFlight, float64(inflight), name)
	gauge(ch, descConns, float64(m.conns.Load()), name)
	gauge(ch, descSuspended, b2f(dev.Suspended()), name)
	gauge(ch, descReadOnly, b2f(dev.ReadOnly()), name)
	gauge(ch, descBroken, b2f(m.broken.Load() != nil), name)
	gauge(ch, descGeneration, float64(st.Generation.Load()), name)
	gauge(ch, descDestroying, float64(st.Destroying.Load()), name)
	counter(ch, descSwaps, st.Swaps.Load(), name)
	counter(ch, descLoadFails, st.LoadFails.Load(), name)

	if dev.View(table.Live, func(t *table.Table) error { collectTargets(ch, t, name); return nil }) != nil {
		gauge(ch, descSize, 0, name)
		gauge(ch, descHolders, 0, name)
	}
}

// newRegistry is gdm's private registry: its collector plus the Go and
// process collectors.
func newRegistry(d *daemon) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// The metrics listener faces every local user: what a scraper may hold is
// bounded, as the control API's is. At most maxMetricsConns connections
// (an idle kept-alive one is closed to make room), maxScrapes scrapes at
// once (more are answered 503 at once), and a scrape's answer written
// within metricsWriteTimeout: a client that asks and never reads would
// otherwise keep its encoded answer (megabytes with thousands of devices)
// in memory for good.
const (
	maxMetricsConns     = 16
	maxScrapes          = 4
	metricsWriteTimeout = 30 * time.Second
)

// withWriteDeadline gives each request metricsWriteTimeout to be written.
func withWriteDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(metricsWriteTimeout))
		h.ServeHTTP(w, r)
	})
}

// metricsHandler serves /metrics from the private registry.
func metricsHandler(d *daemon, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", withWriteDeadline(promhttp.HandlerFor(newRegistry(d), promhttp.HandlerOpts{MaxRequestsInFlight: maxScrapes})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("gdm: see /metrics\n"))
	})
	return mux
}

// collectTargets sends a live table's size and holders, and the counters of
// each of its targets that has seen I/O: a million-target table with I/O on
// a few targets costs a few series, not a million.
func collectTargets(ch chan<- prometheus.Metric, t *table.Table, name string) {
	gauge(ch, descSize, float64(t.Size()), name)
	gauge(ch, descHolders, float64(t.Holders()-1), name) // not counting this scrape
	tgs := t.Targets()
	collectSnapshots(ch, t, tgs, name)
	t.EachSegment(func(i int, seg table.OpSnapshot) {
		idx, typ := strconv.Itoa(i), t.Line(i).Type
		for op := range table.NumOps {
			if seg.Ops[op] == 0 && seg.Errors[op] == 0 {
				continue // keep the series few: only ops a target has seen
			}
			o := op.String()
			counter(ch, descSegOps, seg.Ops[op], name, idx, typ, o)
			counter(ch, descSegBytes, seg.Bytes[op], name, idx, typ, o)
			counter(ch, descSegErrors, seg.Errors[op], name, idx, typ, o)
		}
		if lg, ok := tgs[i].(targets.Legged); ok {
			for leg, ls := range lg.Legs() {
				ops, errs := ls.Ops.Load(), ls.Errors.Load()
				if ops == 0 && errs == 0 {
					continue // as targets: only the legs I/O reached
				}
				l := strconv.Itoa(leg)
				counter(ch, descLegOps, ops, name, idx, l)
				counter(ch, descLegBytes, ls.Bytes.Load(), name, idx, l)
				counter(ch, descLegErrors, errs, name, idx, l)
			}
		}
		if fc, ok := tgs[i].(targets.FaultCounter); ok {
			collectFaults(ch, fc.Faults(), name, idx, typ)
		}

	})
}

// collectFaults sends a fault-injecting target's counters: a kind's series
// appears once the target has injected it, and the delay total once it has
// delayed a request.
func collectFaults(ch chan<- prometheus.Metric, f *targets.FaultStats, name, idx, typ string) {
	for k := range targets.NumFaultKinds {
		if n := f.Requests[k].Load(); n > 0 {
			counter(ch, descFaults, n, name, idx, typ, k.String())
		}
	}
	if f.Requests[targets.FaultDelayed].Load() > 0 {
		ch <- prometheus.MustNewConstMetric(descFaultDelay, prometheus.CounterValue, f.Delay().Seconds(), name, idx, typ)
	}
}
