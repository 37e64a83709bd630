package nbdserver

import "sync/atomic"

// Stats are the server's counters. Read them with Snapshot.
type Stats struct {
	Accepted        atomic.Uint64
	HandshakeFailed [numHandshakeFailures]atomic.Uint64
	Options         [maxOptionStat + 1]atomic.Uint64 // by option type; the last counts unknown types
	ProtocolErrors  atomic.Uint64
	Panics          atomic.Uint64
	// ConnPanics counts panics outside a request's own handling (the
	// handshake, reading requests, writing replies): each ended its
	// connection, and only that.
	ConnPanics atomic.Uint64
	// Stalls counts batches whose requests were handed to other goroutines
	// because one of them took longer than a millisecond.
	Stalls atomic.Uint64
	// Refused counts connections closed at once for a limit, by
	// RefusedGlobal or RefusedPerClient.
	Refused [numRefusals]atomic.Uint64
	// IdleTimeouts and WriteTimeouts count connections dropped by
	// IdleTimeout and WriteTimeout.
	IdleTimeouts, WriteTimeouts atomic.Uint64
	// PayloadTimeouts counts connections dropped by PayloadTimeout.
	PayloadTimeouts atomic.Uint64
	// InFlightWaits counts requests whose reader waited for the bound on
	// bytes in flight across all connections.
	InFlightWaits atomic.Uint64
	// ExportInFlightWaits counts requests whose reader waited for its
	// export's share of that bound (MaxInFlightBytesPerExport).
	ExportInFlightWaits atomic.Uint64
	// PipesRefused counts reads copied rather than spliced because
	// MaxPipes pipes were open.
	PipesRefused atomic.Uint64
	// MemoryReleases counts memory given back to the OS after a burst.
	MemoryReleases atomic.Uint64
	// SpinsFound and SpinsParked count TCP reads that spun on an empty
	// socket (see spinWindow): those that saw a request arrive, and those
	// that gave up and parked. Mostly parked means spinning does not pay on
	// this machine and client.
	SpinsFound, SpinsParked atomic.Uint64
	// AsyncRequests counts requests an AsyncExport took, served without a
	// goroutine waiting for them.
	AsyncRequests atomic.Uint64
	// SplicedWrites counts the asynchronous requests among them whose
	// write payload went from the socket into a pipe and on to the
	// export's remote without a copy in user space (SpliceWriter).
	SplicedWrites atomic.Uint64
	// SplicedReads counts the asynchronous reads among them whose data
	// went from the export's remote socket into a pipe and on to the
	// client's socket (AsyncSpliceReader).
	SplicedReads atomic.Uint64
	// PipeWrites counts writes whose payload went from the socket into a
	// pipe and from there into a local file (PipeWriter).
	PipeWrites atomic.Uint64
	// TLSSessions counts connections that started TLS (NBD_OPT_STARTTLS).
	TLSSessions atomic.Uint64
	// TunerProbes counts the connections' tuners' probes (see tuner) that
	// ran to a verdict, by knob (KnobNames) and result (0 lost, 1 won); a
	// probe cut short by a pause of the client is not counted.
	// TunerSwitches counts the settings they changed, by knob and the way
	// it went (0 off, 1 on): a switch takes two won probes in a row. Many
	// switches of one knob mean its two ways are close on this machine
	// and traffic, or the machine is noisy; none, that the start setting
	// held.
	TunerProbes, TunerSwitches [numKnobs][2]atomic.Uint64
}

// Handshake failure reasons, for Stats.
const (
	HandshakeIO            = iota // the client went away or timed out
	HandshakeBadMagic             // wrong option magic
	HandshakeBadFlags             // unknown client flag bits, or an unimplemented option from a plain newstyle client
	HandshakeUnknownExport        // EXPORT_NAME of an unknown export
	HandshakeOversized            // option data too long to skip
	HandshakeAborted              // client sent ABORT
	HandshakeTLS                  // the TLS handshake failed, or a client went on without the TLS the server requires
	numHandshakeFailures
)

// HandshakeFailureNames name the reasons, in order, for metrics labels.
var HandshakeFailureNames = [numHandshakeFailures]string{"io", "bad_magic", "bad_flags", "unknown_export", "oversized", "aborted", "tls"}

const maxOptionStat = 11

var optionNames = [maxOptionStat + 1]string{1: "export_name", 2: "abort", 3: "list", 4: "peek_export", 5: "starttls",
	6: "info", 7: "go", 8: "structured_reply", 9: "list_meta_context", 10: "set_meta_context", 11: "unknown"}

// OptionName names an option type for metrics; types past the known ones
// are counted together as "unknown".
func OptionName(i int) string { return optionNames[i] }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }
