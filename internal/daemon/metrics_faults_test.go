package daemon

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gdm-project/gdm/pkg/targets"
)

// faultyStub is a fault-injecting target for the metrics test: reads fail,
// writes are dropped, a flush-less zero is "delayed" by 1.5 s of bookkeeping
// (nothing waits).
type faultyStub struct {
	targets.Base
	faults targets.FaultStats
}

func (f *faultyStub) Faults() *targets.FaultStats { return &f.faults }

func (f *faultyStub) ReadAt(context.Context, []byte, int64) error {
	f.faults.Add(targets.FaultReadError)
	return syscall.EIO
}

func (f *faultyStub) WriteAt(context.Context, []byte, int64, targets.WriteFlags) error {
	f.faults.Add(targets.FaultWriteDropped)
	return nil
}

func (f *faultyStub) Zero(context.Context, int64, int64, targets.ZeroFlags) error {
	f.faults.AddDelay(1500 * time.Millisecond)
	return nil
}

func (f *faultyStub) Trim(context.Context, int64, int64) error { return nil }

func (f *faultyStub) Extents(_ context.Context, _, length int64, emit func(targets.Extent) bool) error {
	emit(targets.Extent{Length: length})
	return nil
}

func (f *faultyStub) SpliceTo(context.Context, int, int64, int64) error { return syscall.ENOTSUP }

var registerFaultyStub = sync.OnceValue(func() error {
	return targets.Register(&targets.Type{
		Name:  "test-faulty",
		Check: func(args []string, _ uint64) ([]string, error) { return args, nil },
		New:   func([]string, uint64, *targets.DevSet) (targets.Target, error) { return new(faultyStub), nil },
	})
})

// A fault-injecting target's counts appear per device, target and kind,
// only for the kinds it injected, and the delay total in seconds.
func TestMetricsFaultsPerTargetAndKind(t *testing.T) {
	if err := registerFaultyStub(); err != nil {
		t.Fatal(err)
	}
	td := startTestDaemon(t, "")
	td.ok(t, "create", "f", "--table", "0 8 zero", "--table", "8 8 test-faulty")
	m := mustGet(t, td, "f")
	ctx := context.Background()
	buf := make([]byte, 4096)
	m.exp.ReadAt(ctx, buf[:512], 4096)   // faulty: read error
	m.exp.ReadAt(ctx, buf[:512], 0)      // zero: nothing
	m.exp.WriteAt(ctx, buf[:1024], 3584) // 512 on zero, 512 dropped
	m.exp.WriteAt(ctx, buf[:512], 5120)  // dropped
	m.exp.Zero(ctx, 4096, 1024, false, false)
	want := `
# HELP gdm_target_faults_total Requests a fault-injecting target (flakey, delay, dust) changed, by kind: read_error, write_error, write_dropped, corrupted, delayed.
# TYPE gdm_target_faults_total counter
gdm_target_faults_total{device="f",kind="delayed",target="1",type="test-faulty"} 1
gdm_target_faults_total{device="f",kind="read_error",target="1",type="test-faulty"} 1
gdm_target_faults_total{device="f",kind="write_dropped",target="1",type="test-faulty"} 2
# HELP gdm_target_fault_delay_seconds_total Total time a delay target held its requests back.
# TYPE gdm_target_fault_delay_seconds_total counter
gdm_target_fault_delay_seconds_total{device="f",target="1",type="test-faulty"} 1.5
`
	if err := testutil.GatherAndCompare(newRegistry(td.d), strings.NewReader(want),
		"gdm_target_faults_total", "gdm_target_fault_delay_seconds_total"); err != nil {
		t.Fatal(err)
	}
}
