package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("message", verb{
		usage: "message NAME SECTOR MESSAGE...",
		help:  "send a message to the target at SECTOR (dmsetup message); in memory only, never saved",
		run:   runMessage,
	})
}

// messageHelp is `gdm message -h`: what the verb does beyond its line.
const messageHelp = `usage: gdm message NAME SECTOR MESSAGE...

Sends MESSAGE to the target of NAME's live table that holds SECTOR, as
dmsetup message does, and prints the target's reply, if any. A target
without messages, a sector outside the table or a message the target
refuses exits 1 with the target's reason.

What a message changes (dust's bad-block list and modes, crypt's key)
lives in the table's memory only: it is never saved, and a new table or a
restart of the daemon starts without it (a restart brings a crypt device
back with its table's key, even after a key wipe). Write "--" before message words that begin
with "-". The words are joined with spaces and split again as the kernel
splits a message (dmsetup does the same): "mark a b" is three words, and a
backslash keeps the next character in its word, as in mark a\ b.

dust takes: addbadblock N [WRITE_FAILS], removebadblock N, queryblock N,
countbadblocks, clearbadblocks, listbadblocks, enable, disable, quiet.
crypt takes, while the device is suspended: key wipe, key set HEX.

Flags:
`

// messageFlags is the verb's flag set, its -h text messageHelp.
func messageFlags(cf *clientFlags) *flag.FlagSet {
	fs := newFlagSet("message")
	cf.register(fs, true)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), messageHelp)
		fs.PrintDefaults()
	}
	return fs
}

func runMessage(args []string, _ io.Reader, stdout io.Writer) error {
	var cf clientFlags
	fs := messageFlags(&cf)
	// Words after "--" are the message's as they are, flag-like or not
	// (parseInterspersed cannot see a "--": flag.Parse takes it).
	words := []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		args, words = args[:i], args[i+1:]
	}
	pos, err := parseArgs(fs, args, 0, math.MaxInt)
	if err != nil {
		return err
	}
	if pos = append(pos, words...); len(pos) < 3 {
		return fmt.Errorf("%w: wrong number of arguments", errUsage)
	}
	sector, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: sector %q is not a number of sectors", errUsage, pos[1])
	}
	msg := dmSplitArgs(pos[2:])
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty message", errUsage)
	}
	var resp controlapi.MessageResp
	req := controlapi.MessageReq{Sector: sector, Args: msg}
	if err := controlapi.New(cf.control).Call(http.MethodPost, controlapi.DevicePath(pos[0], "/message"), nil, req, &resp); err != nil {
		return onDevice(pos[0], err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	printReply(stdout, resp.Reply)
	return nil
}

// printReply prints a message's reply as dmsetup does: nothing for none,
// else the text and a newline unless it ends in one already (dust's
// listbadblocks does).
func printReply(w io.Writer, reply string) {
	if reply == "" {
		return
	}
	if !strings.HasSuffix(reply, "\n") {
		reply += "\n"
	}
	io.WriteString(w, reply)
}
