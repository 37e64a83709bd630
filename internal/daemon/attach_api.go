package daemon

import (
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// attachRoutes are the control API's attach and detach.
func (d *daemon) attachRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/devices/{name}/attach", func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.AttachReq
		if !decode(w, r, &req) {
			return
		}
		m, err := d.attach(r.PathValue("name"), req)
		replyInfo(w, d, m, err)
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.DetachReq
		if !decode(w, r, &req) {
			return
		}
		m, err := d.detach(req.Target)
		replyInfo(w, d, m, err)
	})
}
