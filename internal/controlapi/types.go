// Package controlapi is the daemon's control API as both sides see it: the
// JSON bodies the verbs send and the daemon answers (this file), and the
// client the verbs call it with. The daemon's HTTP handlers are in
// internal/daemon; keeping the types here, apart from them, means a field
// changes in one place for both sides.
package controlapi

import (
	"runtime"

	"github.com/gdm-project/gdm/pkg/targets"
)

// TargetType is one line of `gdm targets`: a target type the daemon maps,
// the version of the kernel's dm target it follows, its arguments and
// what it does.
type TargetType struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Syntax  string `json:"syntax"`
	Summary string `json:"summary"`
}

// Deps is what `gdm deps` shows: the backing devices of a device's live
// table.
type Deps struct {
	Name    string `json:"name"`
	Devices []Dep  `json:"devices"`
}

// Dep is one backing device: a block device (with its number), a file or
// an NBD export (Kind "block", "file" or "nbd"), as its table names it.
type Dep struct {
	Path  string `json:"path"`
	Kind  string `json:"kind"`
	Major uint32 `json:"major,omitempty"`
	Minor uint32 `json:"minor,omitempty"`
	// Direct says a block device or file is read and written with
	// O_DIRECT; false for one served through the page cache (gdm serve
	// --block-page-cache; a file without --file-direct; one that refused
	// O_DIRECT).
	Direct bool `json:"direct,omitempty"`
}

// DeviceInfo is what `gdm info` shows, dmsetup info adapted.
type DeviceInfo struct {
	Name   string `json:"name"`
	UUID   string `json:"uuid"`
	State  string `json:"state"`            // ACTIVE, SUSPENDED, or BROKEN (not restored)
	Broken string `json:"broken,omitempty"` // why a BROKEN device could not be restored
	// InactiveLost is why the saved inactive table could not be restored
	// at start (the device runs on its live table; resume is refused
	// until a load or clear replaces it).
	InactiveLost    string `json:"inactive_lost,omitempty"`
	ReadOnly        bool   `json:"read_only"`
	OpenConnections int64  `json:"open_connections"`
	LiveTable       bool   `json:"live_table"`
	InactiveTable   bool   `json:"inactive_table"`
	EventNumber     uint64 `json:"event_number"`
	Generation      uint64 `json:"generation"`
	Holders         int64  `json:"holders"`
	SizeBytes       int64  `json:"size_bytes"`
	Sectors         uint64 `json:"sectors"`
	Targets         int    `json:"targets"` // lines of the live table (dmsetup's segments)

	Attached *Attachment `json:"attached,omitempty"` // its kernel NBD device (gdm attach), if any
}

// StatusLine is one target of `gdm status`.
type StatusLine struct {
	Start  uint64 `json:"start"`
	Length uint64 `json:"length"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// DeviceStatus is `gdm status` of one device.
type DeviceStatus struct {
	Name    string       `json:"name"`
	Targets []StatusLine `json:"targets"`
}

// TableText is a device's table (GET .../table), or the table a load
// sends.
type TableText struct {
	Name  string `json:"name"`
	Table string `json:"table"`
}

// CreateReq is the body of POST /v1/devices.
type CreateReq struct {
	Name     string `json:"name"`
	Table    string `json:"table"`
	UUID     string `json:"uuid,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// NoTable makes the device without a table (Table must be empty).
	NoTable bool `json:"no_table,omitempty"`
}

// RenameReq is the body of POST /v1/devices/NAME/rename.
type RenameReq struct {
	NewName string `json:"new_name"`
}

// MessageReq is the body of POST /v1/devices/NAME/message, dmsetup
// message: the words of the message, for the target holding Sector of the
// live table.
type MessageReq struct {
	Sector uint64   `json:"sector"`
	Args   []string `json:"args"`
}

// MessageResp answers a message with the target's reply ("" for none).
type MessageResp struct {
	Reply string `json:"reply"`
}

// Removed answers DELETE /v1/devices/NAME.
type Removed struct {
	Removed string `json:"removed"`
}

// VersionInfo is one side's version, as `gdm version` shows it.
type VersionInfo struct {
	Version     string   `json:"version"`
	GoVersion   string   `json:"go_version"`
	TargetTypes []string `json:"target_types"`
}

// Version describes this program, built as version.
func Version(version string) VersionInfo {
	return VersionInfo{Version: version, GoVersion: runtime.Version(), TargetTypes: targets.TypeNames()}
}

// Error is the body of every answer that is not 200 OK.
type Error struct {
	Error string `json:"error"`
}
