package oracle

import (
	"fmt"
)

// compareLog compares backing disk i of both sides as log-writes logs
// (CompareLogs), not byte for byte: see cases_logwrites.go for why.
func (rn *Runner) compareLog(rep *Report, i int) {
	var logs [2][]byte
	for k, s := range []Side{rn.A, rn.B} {
		b, err := rn.readDisk(s.Disks()[i])
		if err != nil {
			rep.addf("log $%d on %s: %v", i, s.Name(), err)
			return
		}
		logs[k] = b
	}
	if d := CompareLogs(logs[0], logs[1], rn.logFull); d != "" {
		rep.addf("log-writes log $%d (%s, %s): %s", i, rn.A.Name(), rn.B.Name(), d)
	}
	note := "log-writes logs compared by their epochs' effect (CompareLogs), not byte for byte"
	if rn.logFull {
		note += "; the log filled: only the epochs both hold in full"
	}
	rep.note(note)
}

// readDisk reads the first DiskSize bytes of a backing disk.
func (rn *Runner) readDisk(path string) ([]byte, error) {
	d, err := OpenDevice(path, rn.Direct)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var out []byte
	for _, op := range ReadAll(rn.DiskSize) {
		r := d.Do(op)
		if r.Err != "" {
			return nil, fmt.Errorf("read at %d: %s", op.Off, r.Err)
		}
		out = append(out, r.Data...)
	}
	return out, nil
}
