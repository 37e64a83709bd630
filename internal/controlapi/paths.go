package controlapi

import (
	"net/url"
	"strings"
)

// DevicePath is the API path of the device named name, with suffix ("",
// "/status", "/load", ...) after it. The name is one escaped path segment
// whatever it holds: put in raw, "a?x" became device a with a query, and
// "b/../a" a path the daemon's mux redirected to device a, so a verb
// given a name the daemon would refuse acted on another device. "." and
// ".." have their dots escaped too, so that no path cleaning removes them
// and the daemon refuses them by name.
func DevicePath(name, suffix string) string {
	seg := url.PathEscape(name)
	if name == "." || name == ".." {
		seg = strings.ReplaceAll(name, ".", "%2E")
	}
	return "/v1/devices/" + seg + suffix
}
