package daemon

import (
	"errors"
	"net/http"
	"strings"
	"syscall"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// serveMessage answers POST /v1/devices/{name}/message: `dmsetup message`.
// The live table finds the target holding the sector, as dm does, and the
// target answers. Like dm it takes no device lock and does not wait for a
// suspended device, and nothing it changes is saved: a target's message
// state (dust's bad blocks) lives in the table's memory, and a new table
// or a restart starts without it.
//
// A refusal (a target without messages, a sector outside the table, a
// message the target does not take: each wraps EINVAL, as dm's ioctl
// answers) is the client's error, 400 with the target's text; the other
// errors (no such device, no live table) are answered as the verbs answer
// them.
func (d *daemon) serveMessage(w http.ResponseWriter, r *http.Request, m *managed) {
	var req controlapi.MessageReq
	if !decode(w, r, &req) {
		return
	}
	out, err := m.dev.Message(r.Context(), req.Sector, req.Args)
	switch {
	case errors.Is(err, syscall.EINVAL):
		writeJSON(w, http.StatusBadRequest, controlapi.Error{Error: strings.TrimPrefix(err.Error(), "table: ")})
	case err != nil:
		fail(w, err)
	default:
		reply(w, controlapi.MessageResp{Reply: out})
	}
}
