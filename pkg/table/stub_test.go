package table

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// The stub targets of the hook tests, registered for this package's tests:
//
//	test-recorder <name> [refuse]   a zero target that records every hook,
//	                                flush, FUA write and message it gets
//	                                ("refuse": its PreResume fails)
//	test-stateful <name>            the same, of a NoLiveSwap type
//	test-panic <name>               the same, whose reads panic
func init() {
	check := func(args []string, _ uint64) ([]string, error) {
		if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "refuse") {
			return nil, fmt.Errorf("%w: <name> [refuse]", targets.ErrArgCount)
		}
		return args, nil
	}
	for _, typ := range []*targets.Type{
		{Name: "test-recorder", Check: check, New: newRecorder},
		{Name: "test-stateful", Check: check, New: newRecorder, NoLiveSwap: true},
		{Name: "test-panic", Check: check, New: newPanicky},
	} {
		if err := targets.Register(typ); err != nil {
			panic(err)
		}
	}
}

// errRefused is what a refusing recorder's PreResume answers.
var errRefused = errors.New("recorder refuses to resume")

// events is the log of every recorder's calls, in order.
var events struct {
	sync.Mutex
	log []string
	bad []string // destructor calls from a forbidden place
}

// takeEvents returns the events since the last call, and clears them.
func takeEvents() []string {
	events.Lock()
	defer events.Unlock()
	out := events.log
	events.log = nil
	return out
}

// badDestroys returns destructor calls made from a Put or an I/O path.
func badDestroys() []string {
	events.Lock()
	defer events.Unlock()
	return append([]string(nil), events.bad...)
}

func record(name, what string) {
	events.Lock()
	events.log = append(events.log, name+":"+what)
	events.Unlock()
}

// recorder is a zero target that records what pkg/table calls on it.
type recorder struct {
	targets.Base
	name   string
	refuse bool
}

var (
	_ targets.Flusher        = (*recorder)(nil)
	_ targets.FlushRequester = (*recorder)(nil)
	_ targets.Messenger      = (*recorder)(nil)
	_ targets.Suspender      = (*recorder)(nil)
	_ targets.Resumer        = (*recorder)(nil)
	_ targets.Destroyer      = (*recorder)(nil)
)

func newRecorder(args []string, _ uint64, _ *targets.DevSet) (targets.Target, error) {
	return &recorder{name: args[0], refuse: len(args) == 2}, nil
}

// panicky is a recorder whose reads panic: a target's bug, which the NBD
// server turns into an error reply, and the connection lives on.
type panicky struct{ recorder }

func newPanicky(args []string, _ uint64, _ *targets.DevSet) (targets.Target, error) {
	return &panicky{recorder{name: args[0]}}, nil
}

func (*panicky) ReadAt(context.Context, []byte, int64) error { panic("test-panic: a read") }

func (r *recorder) ReadAt(_ context.Context, p []byte, _ int64) error {
	clear(p)
	return nil
}

func (r *recorder) WriteAt(_ context.Context, _ []byte, _ int64, flags targets.WriteFlags) error {
	if flags&targets.FUA != 0 {
		record(r.name, "write-fua")
	}
	return nil
}

func (r *recorder) Trim(context.Context, int64, int64) error                    { return nil }
func (r *recorder) Zero(context.Context, int64, int64, targets.ZeroFlags) error { return nil }
func (r *recorder) SpliceTo(context.Context, int, int64, int64) error           { return targets.ErrPipeFull }
func (r *recorder) Extents(_ context.Context, _, n int64, emit func(targets.Extent) bool) error {
	emit(targets.Extent{Length: n, Flags: targets.ExtentZero})
	return nil
}

func (r *recorder) Flush(context.Context) error { record(r.name, "flush"); return nil }

func (r *recorder) FlushRequest(context.Context) error {
	record(r.name, "flush-request")
	return nil
}

func (r *recorder) Message(_ context.Context, args []string) (string, error) {
	record(r.name, "message")
	return r.name + ": " + strings.Join(args, " "), nil
}

func (r *recorder) PreSuspend(context.Context)     { record(r.name, "presuspend") }
func (r *recorder) PreSuspendUndo(context.Context) { record(r.name, "presuspend-undo") }
func (r *recorder) PostSuspend(context.Context)    { record(r.name, "postsuspend") }
func (r *recorder) Resume(context.Context)         { record(r.name, "resume") }

func (r *recorder) PreResume(context.Context) error {
	record(r.name, "preresume")
	if r.refuse {
		return errRefused
	}
	return nil
}

// Destroy records itself, and the call's stack if it comes from a Put or
// an I/O path instead of a table's destroy.
func (r *recorder) Destroy() error {
	record(r.name, "destroy")
	buf := make([]byte, 64<<10)
	stack := string(buf[:runtime.Stack(buf, false)])
	forbidden := []string{"(*Table).Put(", "(*Table).putSlow(", "(*Device).io(", "(*Device).Get("}
	ok := strings.Contains(stack, "(*Table).destroy(") || strings.Contains(stack, "(*Table).abandon(")
	for _, f := range forbidden {
		ok = ok && !strings.Contains(stack, f)
	}
	if !ok {
		events.Lock()
		events.bad = append(events.bad, stack)
		events.Unlock()
	}
	return nil
}

// expectEvents fails the test unless the events since the last call are want.
func expectEvents(t *testing.T, what string, want ...string) {
	t.Helper()
	got := takeEvents()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: hooks called\n  %v\nwant\n  %v", what, got, want)
	}
}
