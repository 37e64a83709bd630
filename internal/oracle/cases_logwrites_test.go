package oracle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/logwrites"
	"github.com/gdm-project/gdm/pkg/targets"
)

// testLog is a log of entries, each (sector, data or nil for a flush);
// data of one byte c and length n stands for n sectors of c.
type testEntry struct {
	sector  uint64
	fill    byte
	sectors int
	flags   uint64
	mark    string
}

func buildLog(es ...testEntry) []byte {
	out := logwrites.AppendSuper(nil, logwrites.Super{NrEntries: uint64(len(es)), SectorSize: 512})
	for _, e := range es {
		out = logwrites.AppendEntry(out, logwrites.Entry{Sector: e.sector, NrSectors: uint64(e.sectors), Flags: e.flags}, e.mark, 512)
		if e.flags&logwrites.FlagDiscard == 0 {
			out = append(out, bytes.Repeat([]byte{e.fill}, e.sectors*512)...)
		}
	}
	return out
}

var flushEntry = testEntry{flags: logwrites.FlagFlush}

// The same writes split differently, or reordered inside an epoch where
// they do not overlap, compare equal; the super block's padding is not
// looked at.
func TestCompareLogsSameEffect(t *testing.T) {
	a := buildLog(testEntry{sector: 0, fill: 'a', sectors: 8}, flushEntry,
		testEntry{sector: 100, sectors: 4, flags: logwrites.FlagDiscard}, testEntry{sector: 8, fill: 'b', sectors: 1}, flushEntry)
	b := buildLog(testEntry{sector: 4, fill: 'a', sectors: 4}, testEntry{sector: 0, fill: 'a', sectors: 4}, flushEntry,
		testEntry{sector: 8, fill: 'b', sectors: 1}, testEntry{sector: 100, sectors: 2, flags: logwrites.FlagDiscard},
		testEntry{sector: 102, sectors: 2, flags: logwrites.FlagDiscard}, flushEntry)
	b[28] = 0xee // dm's super block padding
	if d := CompareLogs(a, b, false); d != "" {
		t.Fatal(d)
	}
}

func TestCompareLogsDifferences(t *testing.T) {
	base := []testEntry{{sector: 0, fill: 'a', sectors: 8}, flushEntry, {sector: 8, fill: 'b', sectors: 1}, flushEntry}
	a := buildLog(base...)
	for _, c := range []struct {
		name string
		b    []testEntry
		want string
	}{
		{"data", []testEntry{{sector: 0, fill: 'a', sectors: 7}, {sector: 7, fill: 'x', sectors: 1}, flushEntry, base[2], flushEntry}, "epoch 0: sector 7"},
		{"write in the wrong epoch", []testEntry{base[0], base[2], flushEntry, flushEntry}, "epoch 0: sector 8"},
		{"a flush missing", []testEntry{base[0], base[2], flushEntry}, "epochs"},
		{"mark for flush", []testEntry{base[0], {flags: logwrites.FlagMark, mark: "m"}, base[2], flushEntry}, `ends at "flush" and at "mark m"`},
	} {
		if d := CompareLogs(a, buildLog(c.b...), false); !strings.Contains(d, c.want) {
			t.Errorf("%s: %q, want %q", c.name, d, c.want)
		}
	}
}

// Logs that filled compare on the epochs both hold in full.
func TestCompareLogsFull(t *testing.T) {
	a := buildLog(testEntry{sector: 0, fill: 'a', sectors: 8}, flushEntry, testEntry{sector: 8, fill: 'b', sectors: 4})
	b := buildLog(testEntry{sector: 0, fill: 'a', sectors: 8}, flushEntry, testEntry{sector: 8, fill: 'b', sectors: 2}, flushEntry)
	if d := CompareLogs(a, b, true); d != "" {
		t.Fatal(d)
	}
	if d := CompareLogs(a, b, false); d == "" {
		t.Fatal("without full, the cut epochs compare")
	}
}

func TestLogWritesCasesWellFormed(t *testing.T) {
	cs := LogWritesCases()
	for _, c := range cs {
		if got := LogDevices(c); len(got) != 1 || got[0] != 1 || len(c.Devs) != 2 {
			t.Errorf("%s: log devices %v of %d", c.Name, got, len(c.Devs))
		}
		size, _ := Boundaries(c.Table)
		for _, op := range c.Script {
			if op.Off+op.Len > size {
				t.Errorf("%s: %s beyond the %d-byte device", c.Name, op, size)
			}
		}
	}
	if LogWritesStatusDiff("3 10", "5 20") != "" || LogWritesStatusDiff("3 10 logging_disabled", "5 20") == "" {
		t.Error("LogWritesStatusDiff compares the wrong thing")
	}
}

// runOnTarget runs a log-writes case's script on gdm's target in process,
// each request cut into pieces of at most split bytes (as the kernel
// splits bios), and returns the log's bytes.
func runOnTarget(t *testing.T, c Case, split int64) []byte {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	size, _ := Boundaries(c.Table)
	dev, log := filepath.Join(dir, "dev"), filepath.Join(dir, "log")
	os.WriteFile(dev, make([]byte, DiskBytes), 0o600)
	os.WriteFile(log, make([]byte, DiskBytes), 0o600)
	tp, _ := targets.Lookup("log-writes")
	set := targets.NewDevSet(false)
	defer set.Close()
	tg, err := tp.New([]string{dev, log}, uint64(size/512), set)
	if err != nil {
		t.Fatal(err)
	}
	tg.(targets.Resumer).Resume(ctx)
	for _, op := range c.Script {
		for off := op.Off; off < op.Off+op.Len || op.Len == 0; off += split {
			n := min(split, op.Off+op.Len-off)
			p := make([]byte, max(n, 0))
			fill(p, op.Seed, off)
			switch op.Kind {
			case Write:
				err = tg.WriteAt(ctx, p, off, 0)
			case WriteFUA:
				err = tg.WriteAt(ctx, p, off, targets.FUA)
			case Discard:
				err = tg.Trim(ctx, off, n)
			case WriteZeroes:
				err = tg.Zero(ctx, off, n, targets.ZeroFlags{})
			case Flush:
				err = tg.(targets.FlushRequester).FlushRequest(ctx)
			}
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if op.Len == 0 {
				break
			}
		}
	}
	if err := tg.(targets.Destroyer).Destroy(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The cases' logs written with and without the kernel's splitting
// compare equal by epochs, though their bytes differ; and a log where one
// write went to the wrong epoch does not.
func TestCompareLogsOnTargetLogs(t *testing.T) {
	for _, c := range LogWritesCases() {
		whole, split := runOnTarget(t, c, 64<<20), runOnTarget(t, c, 128<<10)
		if bytes.Equal(whole, split) && c.Name != "log-writes-unflushed" {
			t.Errorf("%s: splitting changed no byte of the log: the test shows nothing", c.Name)
		}
		if d := CompareLogs(whole, split, c.Name == "log-writes-full"); d != "" {
			t.Errorf("%s: %s", c.Name, d)
		}
		if es, err := epochs(split); err != nil || len(es) < 2 {
			t.Errorf("%s: %d epochs (%v): too few to compare anything", c.Name, len(es), err)
		}
	}
	c := LogWritesCases()[0]
	moved := c
	moved.Script = append([]Op{c.Script[2]}, append(append([]Op{}, c.Script[:2]...), c.Script[3:]...)...) // the first flush first
	if d := CompareLogs(runOnTarget(t, c, 64<<20), runOnTarget(t, moved, 64<<20), false); d == "" {
		t.Error("a write moved to another epoch compares equal")
	}
}

// Two logs that are unreadable alike (a log device that took no write on
// either side: all zeros) agree; one of them against a real log does not.
func TestCompareLogsBothUnreadable(t *testing.T) {
	none := make([]byte, 64<<10)
	if d := CompareLogs(none, bytes.Clone(none), false); d != "" {
		t.Fatalf("two empty log devices: %s", d)
	}
	log := buildLog(testEntry{sector: 0, fill: 'a', sectors: 8}, flushEntry)
	if d := CompareLogs(none, log, false); !strings.Contains(d, "log A") {
		t.Fatalf("an empty log device against a log: %q", d)
	}
	if d := CompareLogs(log, none, false); !strings.Contains(d, "log B") {
		t.Fatalf("a log against an empty log device: %q", d)
	}
}
