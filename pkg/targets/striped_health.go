package targets

import (
	"errors"
	"syscall"
)

// A striped target's error accounting, as dm-stripe's end_io keeps it. An
// error of a stripe's I/O is counted against the stripe's device: every
// stripe on that device (dm compares device numbers, and dm_get_device
// opens a device named twice as one) has its error count raised, and the
// status shows D for a stripe whose count is not 0. Each count still
// below DM_IO_ERROR_THRESHOLD raises an event. EOPNOTSUPP (a fast zero, a
// discard a device cannot do) is no error; dm's other exception, a failed
// readahead, has no NBD request to match.
//
// Since dm raises the stripes of one device together, they always hold
// the same count: gdm keeps one counter per device, which is that count.

// stripeEventThreshold is dm-stripe's DM_IO_ERROR_THRESHOLD: a device's
// first 14 errors raise an event each, later ones none.
const stripeEventThreshold = 15

// stripeDevices groups the legs by device: devOf[i] is leg i's device's
// index, the same for legs on one file, block device or export however it
// was named (a device of no known identity is only itself).
func stripeDevices(legs []stripeLeg) (devOf []int, n int) {
	devOf = make([]int, len(legs))
	seen := make(map[any]int, len(legs))
	for i, l := range legs {
		var key any = l.dev
		if id := l.dev.Identity(); id != (Identity{}) {
			key = id
		}
		d, ok := seen[key]
		if !ok {
			d = len(seen)
			seen[key] = d
		}
		devOf[i] = d
	}
	return devOf, len(seen)
}

// count counts err, when it is one of dm's, against leg and its device,
// and returns it.
func (s *striped) count(leg int, err error) error {
	if err == nil || errors.Is(err, syscall.EOPNOTSUPP) {
		return err
	}
	s.legs[leg].stats.Errors.Add(1)
	if s.devErrors[s.devOf[leg]].Add(1) < stripeEventThreshold && s.event != nil {
		s.event()
	}
	return err
}

// FlushFailed counts a client's FLUSH that failed on dev once against each
// leg opened on it: dm sends each stripe a flush of its own
// (num_flush_bios), so a device under k stripes fails k of them.
func (s *striped) FlushFailed(dev *Dev, err error) {
	for i := range s.legs {
		if s.legs[i].dev == dev {
			s.count(i, err)
		}
	}
}

// legFailed says whether leg shows D: its device has seen an error, or it
// is a remote device that lost its connection.
func (s *striped) legFailed(leg int) bool {
	return s.devErrors[s.devOf[leg]].Load() > 0 || s.legs[leg].dev.Down()
}
