package main

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// A verb's control request outlives its own --timeout: the control
// client's bound (10 minutes) would otherwise end `suspend --timeout 15m`
// at 10, and the daemon cancels a verb whose client hung up.
func TestVerbClientCoversTheVerbsTimeout(t *testing.T) {
	cf := clientFlags{control: "/nonexistent"}
	for _, c := range []struct {
		timeout time.Duration
		want    time.Duration
	}{
		{0, controlapi.DefaultTimeout},
		{30 * time.Second, controlapi.DefaultTimeout},
		{15 * time.Minute, 16 * time.Minute},
	} {
		q, err := waitQuery("noflush", false, c.timeout)
		if err != nil {
			t.Fatal(err)
		}
		if got := verbClient(cf, q).Timeout(); got != c.want {
			t.Errorf("--timeout %v: the control client gives up after %v, want %v", c.timeout, got, c.want)
		}
	}
}
