package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// demoListen is where the demo serves NBD over TCP. Only the demo
	// listens on TCP by default: any local user can reach a TCP listener,
	// and the demo's device is the demo's own sparse files.
	demoListen = "127.0.0.1:10809"
	demoName   = "demo"
	demoLegs   = 4
	demoSize   = 1 << 30
	demoChunk  = 128 // sectors: 64 KiB
)

// ensureDemo creates the demo device, 1 GiB striped over four sparse files
// under the state dir, unless the state already has it.
func (d *daemon) ensureDemo(stateDir string) error {
	if _, err := d.get(demoName); err == nil {
		return nil
	}
	dir := filepath.Join(stateDir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var legs []string
	for i := range demoLegs {
		p := filepath.Join(dir, fmt.Sprintf("leg%d.img", i))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil && st.Size() < demoSize/demoLegs {
			err = f.Truncate(demoSize / demoLegs)
		}
		f.Close()
		if err != nil {
			return err
		}
		legs = append(legs, p+" 0")
	}
	text := fmt.Sprintf("0 %d striped %d %d %s\n", demoSize/512, demoLegs, demoChunk, strings.Join(legs, " "))
	_, err := d.create(demoName, text, "", false)
	return err
}
