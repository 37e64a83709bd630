package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/gdm-project/gdm/internal/logwrites"
)

func init() {
	register("replay", verb{
		usage: "replay LOG DEV | replay --dump LOG",
		help:  "replay a log-writes log onto DEV, to a limit or a mark, checking at each flush, FUA or mark (no daemon needed)",
		run:   runReplay,
	})
}

// replayHelp is `gdm replay -h`.
const replayHelp = `usage: gdm replay [flags] LOG DEV
       gdm replay --dump LOG

Replays the writes recorded in LOG (by gdm's or the kernel's log-writes
target, or qemu's blklogwrites driver) onto DEV, a file or block device
as large as the one logged, in the log's order; discarded ranges read as
zeros afterwards. It stops after --limit entries or at --end-mark, and
with --fsck and --check runs a command after each entry of that kind: a
command that fails stops the replay there (exit 1), leaving DEV as it
was when the command saw it. The command runs with sh -c, with
GDM_REPLAY_ENTRY (the entry's number), GDM_REPLAY_FLAGS and
GDM_REPLAY_MARK in its environment. As replay-log does, only the entries
the log's super block counts are replayed: the target rewrites the count
at FUA writes and marks, and at its end.

--dump lists the entries instead: number, sector and sector count (in
the log's sector size), flags, and a mark's name. --start-mark,
--end-mark and --limit pick the entries it lists as they would pick the
ones a replay applies.

Flags:
`

// replayOpts is the verb's flags.
type replayOpts struct {
	limit                       uint64
	startMark, endMark          string
	fsck, check                 string
	noDiscard, verbose, dumpLog bool
}

func replayFlags(o *replayOpts) *flag.FlagSet {
	fs := newFlagSet("replay")
	fs.Uint64Var(&o.limit, "limit", 0, "stop after `N` entries (0: no limit)")
	fs.StringVar(&o.startMark, "start-mark", "", "skip the entries up to and including mark `NAME` (DEV holds them already)")
	fs.StringVar(&o.endMark, "end-mark", "", "stop after mark `NAME`")
	fs.StringVar(&o.fsck, "fsck", "", "`COMMAND` to run at each --check point (sh -c)")
	fs.StringVar(&o.check, "check", "", "when to run --fsck: `WHEN` is fua, flush or mark (after each such entry) or N (every N entries)")
	fs.BoolVar(&o.noDiscard, "no-discard", false, "skip discard entries")
	fs.BoolVar(&o.verbose, "v", false, "print each entry as it is replayed")
	fs.BoolVar(&o.dumpLog, "dump", false, "list the log's entries; replay nothing")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayHelp)
		fs.PrintDefaults()
	}
	return fs
}

func runReplay(args []string, _ io.Reader, stdout io.Writer) error {
	var o replayOpts
	pos, err := parseArgs(replayFlags(&o), args, 1, 2)
	if err != nil {
		return err
	}
	if o.dumpLog != (len(pos) == 1) {
		return fmt.Errorf("%w: replay takes LOG and DEV, or --dump and LOG", errUsage)
	}
	if o.dumpLog && (o.fsck != "" || o.check != "" || o.noDiscard) {
		return fmt.Errorf("%w: --dump replays nothing, so --fsck, --check and --no-discard have no place with it", errUsage)
	}
	if (o.fsck == "") != (o.check == "") {
		return fmt.Errorf("%w: --fsck and --check go together", errUsage)
	}
	checkAt, err := checkPoints(o.check)
	if err != nil {
		return err
	}
	f, err := logwrites.OpenLog(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	log, err := logwrites.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if o.dumpLog {
		return dump(log, o, stdout)
	}
	dev, err := logwrites.OpenDevice(pos[1])
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := notTheLog(f, dev.File); err != nil {
		return err
	}
	return replayOnto(log, dev, o, checkAt, stdout)
}

// notTheLog refuses a DEV that is LOG itself (by another name, a link, or
// the same block device): the replay would overwrite the log as it reads
// it, and end with neither.
func notTheLog(log, dev *os.File) error {
	ls, err := log.Stat()
	if err != nil {
		return err
	}
	ds, err := dev.Stat()
	if err != nil {
		return err
	}
	if os.SameFile(ls, ds) || (ls.Mode()&os.ModeDevice != 0 && ds.Mode()&os.ModeDevice != 0 && rdev(ls) == rdev(ds)) {
		return fmt.Errorf("%s is the log itself (%s)", dev.Name(), log.Name())
	}
	return nil
}

// checkPoints is --check's choice of entries.
func checkPoints(s string) (func(logwrites.Record) bool, error) {
	switch s {
	case "":
		return nil, nil
	case "fua":
		return logwrites.CheckFlags(logwrites.FlagFUA), nil
	case "flush":
		return logwrites.CheckFlags(logwrites.FlagFlush), nil
	case "mark":
		return logwrites.CheckFlags(logwrites.FlagMark), nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("%w: --check takes fua, flush, mark or a number of entries, not %q", errUsage, s)
	}
	return logwrites.CheckEvery(n), nil
}

// describe is one entry as --dump and -v print it.
func describe(r logwrites.Record) string {
	s := fmt.Sprintf("%d: sector %d, %d sectors, flags %s", r.Index, r.Entry.Sector, r.Entry.NrSectors, logwrites.FlagString(r.Entry.Flags))
	if r.Entry.Flags&logwrites.FlagMark != 0 {
		s += fmt.Sprintf(", mark %q", r.Mark)
	}
	return s
}

// dump lists the entries a replay with o's window would apply.
func dump(log *logwrites.Reader, o replayOpts, w io.Writer) error {
	s := log.Super()
	fmt.Fprintf(w, "log version %d, sector size %d, %d entries\n", logwrites.Version, s.SectorSize, s.NrEntries)
	_, err := logwrites.Replay(log, nil, logwrites.Options{StartMark: o.startMark, Limit: o.limit, EndMark: o.endMark, DryRun: true,
		Trace: func(r logwrites.Record) { fmt.Fprintln(w, describe(r)) }})
	return err
}

// replayOnto replays log onto dev and syncs it, before
// each check and at the end.
func replayOnto(log *logwrites.Reader, dev *logwrites.FileDevice, o replayOpts, checkAt func(logwrites.Record) bool, stdout io.Writer) error {
	opts := logwrites.Options{StartMark: o.startMark, Limit: o.limit, EndMark: o.endMark, NoDiscard: o.noDiscard, CheckAt: checkAt}
	if o.verbose {
		opts.Trace = func(r logwrites.Record) { fmt.Fprintln(stdout, "replaying "+describe(r)) }
	}
	opts.Check = func(r logwrites.Record) error {
		if err := dev.Sync(); err != nil {
			return err
		}
		return runCheck(o.fsck, r, stdout)
	}
	n, err := logwrites.Replay(log, dev, opts)
	if serr := dev.Sync(); err == nil {
		err = serr
	}
	if o.verbose {
		fmt.Fprintf(stdout, "replayed %d entries\n", n)
	}
	return err
}

// errCheck is a --fsck command that failed.
var errCheck = errors.New("check failed")

func runCheck(command string, r logwrites.Record, stdout io.Writer) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"GDM_REPLAY_ENTRY="+strconv.FormatUint(r.Index, 10),
		"GDM_REPLAY_FLAGS="+logwrites.FlagString(r.Entry.Flags),
		"GDM_REPLAY_MARK="+r.Mark)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w after entry %s: %v", errCheck, describe(r), err)
	}
	return nil
}

// rdev is the device number a device node names.
func rdev(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Rdev
	}
	return 0
}
