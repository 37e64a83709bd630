package daemon

import (
	"fmt"
	"strconv"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// checkSaved refuses a saved attachment that no attach could have made:
// the state file is read back at every start, and a corrupt or
// hand-edited one must not make the daemon open socket pairs without
// bound (connections) or point its link at another device than the
// kernel's /dev/nbd<index>. Such an attachment is not reconnected; the
// operator detaches it (which forgets it) or fixes the file. A negative
// index, which no detach could disconnect, is forgotten before this check
// (reattach); another device's index the kernel refuses by its backend.
func checkSaved(a *controlapi.Attachment) error {
	switch {
	case a.Connections < 1 || a.Connections > maxAttachConns:
		return fmt.Errorf("%w: saved attachment has %d connections, not 1 to %d", errBadAttach, a.Connections, maxAttachConns)
	case a.Device != "/dev/nbd"+strconv.Itoa(a.Index):
		return fmt.Errorf("%w: saved attachment names %q for index %d", errBadAttach, a.Device, a.Index)
	case a.TimeoutSeconds < 0 || a.DeadTimeoutSeconds < 0:
		return fmt.Errorf("%w: saved attachment has a negative timeout", errBadAttach)
	}
	return nil
}
