package targets

import "testing"

// TestParseRemoteVerifyPeer: the NBD URI standard (doc/uri.md) spells
// tls-verify-peer as 0 or 1; libnbd takes false and true too. A URI
// written to the standard must not be refused.
func TestParseRemoteVerifyPeer(t *testing.T) {
	for v, noVerify := range map[string]bool{"0": true, "1": false, "false": true, "true": false} {
		r, err := parseRemote("nbds://h/x?tls-verify-peer=" + v)
		if err != nil || r.tlsNoVerify != noVerify {
			t.Errorf("tls-verify-peer=%s: %+v, %v; want no verification: %v", v, r, err, noVerify)
		}
	}
}
