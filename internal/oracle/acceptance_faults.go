package oracle

// faultAcceptance is what Debian 12's kernel (6.1) accepts and refuses of
// delay and flakey lines. Its parsers differ in how they read numbers: delay
// and flakey's device offset use sscanf's "%llu%c" / "%u%c" (no sign, and a
// %u too large for 32 bits wraps silently rather than failing), flakey's
// intervals and feature values go through dm_read_arg (the same sscanf, then
// a range). Feature names and the corrupt direction are case-insensitive;
// arguments after the feature group are ignored. 6.1 has no error_reads
// (added in 6.5): gdm takes it, as later kernels do, so it has no line
// here (pkg/targets tests it). Every line costs seconds of TCG (a few
// dmsetup and gdm processes): each stands for one rule.
func faultAcceptance() []Accept {
	yes := func(t string) Accept { return Accept{Table: t, Want: true} }
	no := func(t string) Accept { return Accept{Table: t} }
	// dm reads these numbers with sscanf's %u, which wraps past 32 bits
	// without a word (4294967316 ms is a 20 ms delay); gdm refuses them.
	wraps := func(t string) Accept {
		return Accept{Table: t, Want: true, GdmRefuses: "a number over 32 bits, which dm's sscanf %u silently wraps"}
	}
	return []Accept{
		yes("0 8 delay $0 0 0"),
		yes("0 8 delay $0 0 10 $1 8 20 $2 16 30"),
		yes("0 8 delay $0 007 010"),
		wraps("0 8 delay $0 0 4294967316"),
		no("0 8 delay $0 0 1 $1"),
		no("0 8 delay $0 0 1 $1 0 1 $2"),
		no("0 8 delay $0 0 1 $1 0 1 $2 0 1 $3"),
		no("0 8 delay $0 0 +1"),
		no("0 8 delay $0 0 1ms"),
		no("0 8 delay $0 16380 1"),
		no("0 8 delay $0 0 1 $1 0 1 $2 16380 1"),
		no("0 8 delay $0 0 1 /dev/nonexistent 0 1"),

		yes("0 8 flakey $0 007 01 1"),
		yes("0 8 flakey $0 0 1 1 0"),
		yes("0 8 flakey $0 0 1 1 1 error_writes"),
		yes("0 8 flakey $0 0 1 1 1 DROP_WRITES"),
		yes("0 8 flakey $0 0 1 1 5 corrupt_bio_byte 32 W 255 0"),
		yes("0 8 flakey $0 0 1 1 6 drop_writes corrupt_bio_byte 1 r 0 0"),
		yes("0 8 flakey $0 8 4294967295 0"),
		wraps("0 8 flakey $0 0 4294967296 1"),
		yes("0 8 flakey $0 0 1 1 1 drop_writes junk"),
		no("0 8 flakey $0 0 1"),
		no("0 8 flakey $0 0 0 0"),
		no("0 8 flakey $0 0 4294967295 1"),
		no("0 8 flakey $0 0 +1 1"),
		no("0 8 flakey $0 0 1 1 1"),
		no("0 8 flakey $0 0 1 1 7 drop_writes"),
		no("0 8 flakey $0 0 1 1 1 bogus"),
		no("0 8 flakey $0 0 1 1 2 drop_writes error_writes"),
		no("0 8 flakey $0 0 1 1 1 corrupt_bio_byte"),
		no("0 8 flakey $0 0 1 1 2 corrupt_bio_byte 1 r 0 0"),
		no("0 8 flakey $0 0 1 1 5 corrupt_bio_byte 0 r 0 0"),
		no("0 8 flakey $0 0 1 1 5 corrupt_bio_byte 1 x 0 0"),
		no("0 8 flakey $0 0 1 1 5 corrupt_bio_byte 1 r 256 0"),
		no("0 8 flakey $0 0 1 1 6 corrupt_bio_byte 1 w 0 0 drop_writes"),
		no("0 8 flakey $0 0 1 1 6 error_writes corrupt_bio_byte 1 w 0 0"),
		no("0 8 flakey $0 16380 1 1"),
	}
}
