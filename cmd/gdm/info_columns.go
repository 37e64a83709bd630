package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gdm-project/gdm/internal/controlapi"
	"golang.org/x/sys/unix"
)

// `gdm info -c`: dmsetup info -c's one line a device, in columns chosen
// with -o, for scripts (`gdm info -c --noheadings -o name,attr`).

// infoField is one column: its -o name, its heading, and its value.
type infoField struct {
	name, heading string
	value         func(controlapi.DeviceInfo) string
}

// infoFields are dmsetup's field names that mean something for gdm.
var infoFields = []infoField{
	{"name", "Name", func(i controlapi.DeviceInfo) string { return i.Name }},
	{"major", "Maj", func(i controlapi.DeviceInfo) string { return devNumber(i, unix.Major) }},
	{"minor", "Min", func(i controlapi.DeviceInfo) string { return devNumber(i, unix.Minor) }},
	{"attr", "Stat", attr},
	{"open", "Open", func(i controlapi.DeviceInfo) string { return strconv.FormatInt(i.OpenConnections, 10) }},
	{"segments", "Targ", func(i controlapi.DeviceInfo) string { return strconv.Itoa(i.Targets) }},
	{"events", "Event", func(i controlapi.DeviceInfo) string { return strconv.FormatUint(i.EventNumber, 10) }},
	{"uuid", "UUID", func(i controlapi.DeviceInfo) string { return i.UUID }},
}

const defaultInfoFields = "name,major,minor,attr,open,segments,events,uuid"

// pickFields parses -o's comma-separated list.
func pickFields(list string) ([]infoField, error) {
	var out []infoField
	for _, n := range strings.Split(list, ",") {
		i := slices.IndexFunc(infoFields, func(f infoField) bool { return f.name == strings.TrimSpace(n) })
		if i < 0 {
			return nil, fmt.Errorf("%w: -o: unknown field %q (fields: %s)", errUsage, n, defaultInfoFields)
		}
		out = append(out, infoFields[i])
	}
	return out, nil
}

// attr is dmsetup's Stat: L (a live table), I (an inactive one), s
// (suspended), then r or w.
func attr(i controlapi.DeviceInfo) string {
	b := []byte("---w")
	if i.LiveTable {
		b[0] = 'L'
	}
	if i.InactiveTable {
		b[1] = 'I'
	}
	if i.State == "SUSPENDED" {
		b[2] = 's'
	}
	if i.ReadOnly {
		b[3] = 'r'
	}
	return string(b)
}

// devNumber is a part of the device number of the device's kernel block
// device, if it is attached (gdm attach) and its node is here; "-" if not.
func devNumber(i controlapi.DeviceInfo, part func(uint64) uint32) string {
	if i.Attached == nil {
		return "-"
	}
	var st unix.Stat_t
	if err := unix.Stat(i.Attached.Device, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "-"
	}
	return strconv.FormatUint(uint64(part(st.Rdev)), 10)
}

// printColumns writes infos as dmsetup info -c does: a heading line
// unless noHeadings, then a line a device; aligned in columns, or joined
// by sep when it is given.
func printColumns(w io.Writer, infos []controlapi.DeviceInfo, fields []infoField, noHeadings bool, sep string) error {
	out := w
	var tw *tabwriter.Writer
	if sep == "" {
		tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		out, sep = tw, "\t"
	}
	row := func(cell func(infoField) string) {
		cells := make([]string, len(fields))
		for k, f := range fields {
			cells[k] = cell(f)
		}
		fmt.Fprintln(out, strings.Join(cells, sep))
	}
	if !noHeadings {
		row(func(f infoField) string { return f.heading })
	}
	for _, i := range infos {
		row(func(f infoField) string { return f.value(i) })
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}
