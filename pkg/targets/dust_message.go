package targets

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// dust's messages, as dm-dust's .message takes them (verbs in any case):
//
//	addbadblock <n> [<write fail count>]  removebadblock <n>  queryblock <n>
//	countbadblocks  clearbadblocks  listbadblocks  enable  disable  quiet
//
// Replies are the text dm hands back to dmsetup (queryblock, countbadblocks,
// clearbadblocks, listbadblocks; the others reply nothing). Where dm
// answers EINVAL and says why in the kernel log, gdm's error wraps
// syscall.EINVAL and carries that log line. The list and modes are in
// memory only: nothing a message changes is saved.

// dustErr is a refused message: dm's log text, wrapping EINVAL.
func dustErr(format string, args ...any) error {
	return fmt.Errorf("dust: "+format+": %w", append(args, syscall.EINVAL)...)
}

// Message runs one message; see above.
func (d *dust) Message(_ context.Context, args []string) (string, error) {
	switch len(args) {
	case 1:
		return d.message1(args[0])
	case 2, 3:
		return d.blockMessage(args)
	}
	return "", dustErr("invalid number of arguments '%d'", len(args))
}

// message1 is a message of one word.
func (d *dust) message1(word string) (string, error) {
	switch strings.ToLower(word) {
	case "addbadblock", "removebadblock", "queryblock":
		return "", dustErr("%s requires an additional argument", word)
	case "enable":
		d.enabled.Store(true)
	case "disable":
		d.enabled.Store(false)
	case "quiet":
		d.quietToggles.Add(1)
	case "countbadblocks":
		return fmt.Sprintf("countbadblocks: %d badblock(s) found", d.bad.count()), nil
	case "clearbadblocks":
		if d.bad.clear() == 0 {
			return "dust_clear_badblocks: no badblocks found", nil
		}
		return "dust_clear_badblocks: badblocks cleared", nil
	case "listbadblocks":
		if l := d.bad.list(); l != "" {
			return l, nil
		}
		return "No blocks in badblocklist", nil
	default:
		return "", dustErr("unrecognized message '%s' received", word)
	}
	return "", nil
}

// blockMessage is a message naming a block: addbadblock, removebadblock
// and queryblock with one, addbadblock also with a write fail count. The
// numbers are checked before the verb, as dm does.
func (d *dust) blockMessage(args []string) (string, error) {
	block, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return "", dustErr("invalid block number '%s'", args[1])
	}
	var wrFail uint64
	if len(args) == 3 {
		if wrFail, err = strconv.ParseUint(args[2], 10, 32); err != nil {
			return "", dustErr("invalid write fail count '%s'", args[2])
		}
		if wrFail > 255 {
			return "", dustErr("selected write fail count out of range")
		}
	}
	if block > d.devBlocks {
		return "", dustErr("selected block value out of range")
	}
	switch verb := strings.ToLower(args[0]); {
	case verb == "addbadblock":
		if !d.bad.add(block, uint8(wrFail)) {
			return "", dustErr("dust_add_block: block %d already in badblocklist", block)
		}
		return "", nil
	case verb == "removebadblock" && len(args) == 2:
		if !d.bad.remove(block) {
			return "", dustErr("dust_remove_block: block %d not found in badblocklist", block)
		}
		return "", nil
	case verb == "queryblock" && len(args) == 2:
		if d.bad.has(block) {
			return fmt.Sprintf("dust_query_block: block %d found in badblocklist", block), nil
		}
		return fmt.Sprintf("dust_query_block: block %d not found in badblocklist", block), nil
	}
	return "", dustErr("unrecognized message '%s' received", args[0])
}
