package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// bigTable creates a device of n linear targets of 8 sectors over one
// sparse file and measures the create, the RSS growth and each verb.
func bigTable(bin string, n int) error {
	dir, err := os.MkdirTemp("", "gdm-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "backing.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(img, int64(n)*8*512); err != nil {
		return err
	}
	var b strings.Builder
	for i := range n {
		s := strconv.Itoa(i * 8)
		b.WriteString(s + " 8 linear " + img + " " + s + "\n")
	}
	text := b.String()
	d, err := start(bin, dir)
	if err != nil {
		return err
	}
	before := d.rss()
	took, err := timed(func() error {
		return d.api.CallBody(http.MethodPost, "/v1/devices", url.Values{"name": {"big"}}, controlapi.TextTable, strings.NewReader(text), nil)
	})
	if err != nil {
		return err
	}
	after := d.rss()
	fmt.Printf("big table: %d targets, %s of text: create %v; daemon RSS %s -> %s (+%.0f B/target)\n",
		n, mb(int64(len(text))), took.Round(time.Millisecond), mb(before), mb(after), float64(after-before)/float64(n))
	// The daemon gives a big build's garbage back in the background: its
	// RSS a moment later is what the table costs.
	time.Sleep(2 * time.Second)
	settled := d.rss()
	fmt.Printf("  2 s later: RSS %s (+%.0f B/target), Go heap in use %s\n",
		mb(settled), float64(settled-before)/float64(n), mb(int64(d.gauge("go_memstats_heap_inuse_bytes"))))
	if err := verbs(d, n); err != nil {
		d.stop()
		return err
	}
	if err := cliCreate(d, dir, text); err != nil {
		d.stop()
		return err
	}
	return restartBig(bin, dir, d)
}

// cliCreate times the same table created by the gdm binary itself, from a
// file (`gdm create --table-file`: reading and sending it included), and
// removes that device again.
func cliCreate(d *daemon, dir, text string) error {
	file := filepath.Join(dir, "big.table")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		return err
	}
	took, err := timed(func() error {
		out, err := exec.Command(d.bin, "create", "big-cli", "--control", d.control, "--table-file", file).CombinedOutput()
		if err != nil {
			return fmt.Errorf("gdm create: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("  gdm create --table-file of it: %v\n", took.Round(time.Millisecond))
	return d.api.Call(http.MethodDelete, "/v1/devices/big-cli", nil, nil, nil)
}

// restartBig stops the daemon holding the big table and times a restart
// with it restored.
func restartBig(bin, dir string, d *daemon) error {
	stopped, err := d.stop()
	if err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	t0 := time.Now()
	if d, err = start(bin, dir); err != nil {
		return err
	}
	defer d.stop()
	var info controlapi.DeviceInfo
	if err := d.api.Call(http.MethodGet, "/v1/devices/big", nil, nil, &info); err != nil || info.State != "ACTIVE" {
		return fmt.Errorf("big table not restored (%s): %v", info.State, err)
	}
	fmt.Printf("  SIGTERM %v; restart with it restored %v, RSS %s\n", stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), mb(d.rss()))
	return nil
}

// verbs times each verb on the big device (and info of it).
func verbs(d *daemon, n int) error {
	steps := []struct {
		name string
		f    func() error
	}{
		{"info", func() error { return d.api.Call(http.MethodGet, "/v1/devices/big", nil, nil, nil) }},
		{"suspend", func() error { return d.api.Call(http.MethodPost, "/v1/devices/big/suspend", nil, nil, nil) }},
		{"resume", func() error { return d.api.Call(http.MethodPost, "/v1/devices/big/resume", nil, nil, nil) }},
		{"table (text)", func() error { _, err := d.get("/v1/devices/big/table?format=text"); return err }},
		{"status", func() error { _, err := d.get("/v1/devices/big/status"); return err }},
		{"ls", func() error { _, err := d.get("/v1/devices"); return err }},
	}
	for _, s := range steps {
		took, err := timed(s.f)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("  %-13s %v\n", s.name, took.Round(time.Microsecond))
	}
	fmt.Printf("  RSS after the verbs: %s\n", mb(d.rss()))
	return nil
}

// manyDevices creates n devices of "0 8 zero" one by one, then measures
// ls, a scrape, SIGTERM, and a restart with all restored.
func manyDevices(bin string, n int) error {
	dir, err := os.MkdirTemp("", "gdm-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := start(bin, dir)
	if err != nil {
		return err
	}
	took, err := timed(func() error {
		for i := range n {
			q := url.Values{"name": {fmt.Sprintf("d%05d", i)}}
			if err := d.api.CallBody(http.MethodPost, "/v1/devices", q, controlapi.TextTable, strings.NewReader("0 8 zero\n"), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.stop()
		return err
	}
	fmt.Printf("%d devices: create %v (%v/device), RSS %s\n", n, took.Round(time.Millisecond), (took / time.Duration(n)).Round(time.Microsecond), mb(d.rss()))
	if err := lsAndScrape(d); err != nil {
		d.stop()
		return err
	}
	stopped, err := d.stop()
	if err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	t0 := time.Now()
	d, err = start(bin, dir)
	if err != nil {
		return err
	}
	var all []controlapi.DeviceInfo
	if err := d.api.Call(http.MethodGet, "/v1/devices", nil, nil, &all); err != nil || len(all) != n {
		d.stop()
		return fmt.Errorf("after restart %d devices (want %d): %v", len(all), n, err)
	}
	restart := time.Since(t0)
	stopped2, err := d.stop()
	fmt.Printf("  SIGTERM %v; restart with all %d restored %v; SIGTERM again %v\n",
		stopped.Round(time.Millisecond), n, restart.Round(time.Millisecond), stopped2.Round(time.Millisecond))
	return err
}

func lsAndScrape(d *daemon) error {
	var size int64
	took, err := timed(func() error { var err error; size, err = d.get("/v1/devices"); return err })
	if err != nil {
		return err
	}
	fmt.Printf("  ls %v, %s\n", took.Round(time.Millisecond), mb(size))
	var lines int
	took, err = timed(func() error { var err error; size, lines, err = d.scrape(); return err })
	if err != nil {
		return err
	}
	fmt.Printf("  scrape %v, %s, %d lines\n", took.Round(time.Millisecond), mb(size), lines)
	return nil
}
