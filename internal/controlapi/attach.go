package controlapi

// AttachReq is `gdm attach`'s body (POST /v1/devices/{name}/attach).
// Zero fields take the daemon's defaults.
type AttachReq struct {
	Connections int `json:"connections,omitempty"` // sockets, one per kernel connection (multi-conn)
	// Index is the /dev/nbdN wanted; nil lets the kernel pick a free one.
	Index              *int  `json:"index,omitempty"`
	TimeoutSeconds     int64 `json:"timeout_seconds,omitempty"`      // per request, before the kernel drops a connection
	DeadTimeoutSeconds int64 `json:"dead_timeout_seconds,omitempty"` // how long I/O waits for the daemon to come back
	ReadOnly           bool  `json:"read_only,omitempty"`
}

// DetachReq is `gdm detach`'s body (POST /v1/detach): a device name or
// the /dev/nbdN it is attached as.
type DetachReq struct {
	Target string `json:"target"`
}

// Attachment is a device's kernel NBD device: what `gdm attach` made, as
// ls and info show it and the daemon's state keeps it across restarts.
type Attachment struct {
	Index              int    `json:"index"`
	Device             string `json:"device"`         // /dev/nbdN
	Link               string `json:"link,omitempty"` // /dev/gdm/NAME
	Connections        int    `json:"connections"`
	TimeoutSeconds     int64  `json:"timeout_seconds"`
	DeadTimeoutSeconds int64  `json:"dead_timeout_seconds"`
	ReadOnly           bool   `json:"read_only,omitempty"`
	SizeBytes          int64  `json:"size_bytes"`           // what the kernel was last told
	BlockSize          int64  `json:"block_size,omitempty"` // likewise (0 in a state saved before: 512)
	Backend            string `json:"backend"`              // the identifier the kernel keeps
}
