package targets

// Which targets take discards whatever their devices, and which pass
// write-zeroes on (see SelfDiscarder and ZeroPasser), as each sets it in
// dm 6.1's constructor. The rest take neither on their own: crypt (with
// allow_discards), delay, flakey, dust and snapshot (with
// discard_zeroes_cow) send discards to their devices and so take them
// only where those do; none of them, nor snapshot-origin, zero or error,
// passes write-zeroes on.
var (
	_ SelfDiscarder = (*logWrites)(nil)
	_ ZeroPasser    = (*linear)(nil)
	_ ZeroPasser    = (*striped)(nil)
)

// DiscardsWithoutDevices is true: dm's log-writes sets discards_supported
// and logs a discard even when its data device takes none (the trim on
// that device then does nothing).
func (l *logWrites) DiscardsWithoutDevices() bool { return true }

// PassesWriteZeroes is true: dm's linear sets num_write_zeroes_bios.
func (l *linear) PassesWriteZeroes() bool { return true }

// PassesWriteZeroes is true: dm's striped sets num_write_zeroes_bios to
// its stripe count.
func (s *striped) PassesWriteZeroes() bool { return true }
