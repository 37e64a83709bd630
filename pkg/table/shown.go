package table

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/pkg/targets"
)

// The table as `dmsetup table` shows it: each line's args as its target's
// STATUSTYPE_TABLE gives them, which for crypt hides the key (zeros of its
// length, as dmsetup prints without --showkeys) and for snapshot gives the
// chunk size in use. The text the table keeps (Text, WriteText), which the
// daemon saves, holds the args as loaded.

// hidesArgs says whether any target's TABLE status differs from its
// canonical args (found with the table's other traits), so that a table
// with none (every table without crypt) is shown as fast as its text is
// written.
func (t *Table) hidesArgs() bool { return t.traits().hides }

// WriteShown writes the table as `gdm table` prints it: each line with
// its target's TABLE status for args, but with showKeys a secret-hiding
// target's (crypt's) own args, key and all.
func (t *Table) WriteShown(w io.Writer, showKeys bool) error {
	if !t.hidesArgs() {
		return t.WriteText(w)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for i, tg := range t.targets {
		line = strconv.AppendUint(line[:0], t.sector(i), 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, t.sector(i+1)-t.sector(i), 10)
		line = append(line, ' ')
		line = append(line, t.lines.typeName(i)...)
		args := t.argsOf(i)
		if _, secret := tg.(targets.SecretHider); !showKeys || !secret {
			args = t.statusOf(i, tg, targets.StatusTable)
		}
		if args != "" {
			line = append(line, ' ')
			line = append(line, args...)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Shown is WriteShown's text as a string.
func (t *Table) Shown(showKeys bool) string {
	if !t.hidesArgs() {
		return t.Text()
	}
	var b strings.Builder
	t.WriteShown(&b, showKeys) // a strings.Builder does not fail
	return b.String()
}
