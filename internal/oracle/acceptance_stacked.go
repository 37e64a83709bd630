package oracle

// stackedAcceptance are tables over under devices (under.go) that dm
// judges by what the device below does at load: a persistent snapshot
// writes its new store's header and zeroes its first metadata area at
// construction (dm's persistent_read_metadata), so a COW device that fails
// writes, or every I/O, refuses the table, and one that drops writes takes
// it; a striped leg longer than its under device is refused as for a
// disk.
func stackedAcceptance() []Accept {
	cow := func(under string, want bool) Accept {
		return Accept{Table: "0 8192 snapshot $0 $u0 P 8", Want: want, Zero: []int{1}, Under: []string{under}}
	}
	return []Accept{
		cow("0 8192 flakey $1 0 0 3600 1 error_writes", false),
		cow("0 8192 flakey $1 0 0 3600", false),
		cow("0 8192 flakey $1 0 0 3600 1 drop_writes", true),
		cow("0 16 linear $1 0\n16 8176 error", true),
		cow("0 8 linear $1 0\n8 8184 error", false),
		{Table: "0 16384 striped 2 8 $0 0 $u0 0", Under: []string{"0 4096 linear $1 0"}},
		{Table: "0 8192 striped 2 8 $0 0 $u0 0", Want: true, Under: []string{"0 4096 linear $1 0"}},
	}
}
