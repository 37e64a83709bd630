package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// The snapshot rows (issue 18): gdm's snapshot targets over the same file
// as the linear row, each round in a fresh daemon with a fresh COW file
// (written with zeros, in the same tmpfs: freshCow), 4 KiB chunks (P 8). fio's random jobs visit
// each block once before any block twice, so within one run every 4 KiB
// random write lands in a chunk no earlier write of that run touched.
//
//   - gdm-snap: the bench device is a new snapshot. 4k randread reads
//     chunks no one changed (they come from the origin, past an exception
//     lookup and a range lock); 4k randwrite makes one exception per write
//     (a whole chunk: no copy, as dm, but a COW chunk and a metadata
//     commit).
//   - gdm-snap-origin: the bench device is the origin, with a new snapshot
//     of it on a second device. Every first write to a chunk copies the old
//     chunk to the COW and commits the exception before the write goes on:
//     first writes, each one chunk copy and one metadata write.
//   - gdm-snap-rewrite: a snapshot written whole before the round's jobs
//     (every chunk has its exception). Its writes are rewrites of chunks
//     the snapshot has, its reads come from the COW.
//
// The rows share the origin file with the others: a linear row's writes
// change what a snapshot reads, which does not change what it costs.
const snapChunk = "8" // sectors

// snapServers are the snapshot rows, as servers.
func snapServers(gdm, work string) []server {
	row := func(name string, setup func(b *bench, ctl, cow string, ep endpoint) error) server {
		return server{name: name, start: gdmServer(gdm, work, name, ""), gdm: gdm,
			setup: func(b *bench, i int) error {
				cow := filepath.Join(b.work, name+"-cow.img")
				if err := freshCow(cow, b.cfg.size); err != nil {
					return err
				}
				return setup(b, gdmControl(b.work, name), cow, b.eps[i])
			}}
	}
	return []server{
		row("gdm-snap", func(b *bench, ctl, cow string, ep endpoint) error {
			return gdmCreate(gdm, ctl, "bench", snapLine(b, cow))
		}),
		row("gdm-snap-origin", func(b *bench, ctl, cow string, ep endpoint) error {
			if err := gdmCreate(gdm, ctl, "bench", fmt.Sprintf("0 %d snapshot-origin %s", b.cfg.size/512, b.file)); err != nil {
				return err
			}
			return gdmCreate(gdm, ctl, "snap", snapLine(b, cow))
		}),
		row("gdm-snap-rewrite", func(b *bench, ctl, cow string, ep endpoint) error {
			if err := gdmCreate(gdm, ctl, "bench", snapLine(b, cow)); err != nil {
				return err
			}
			return b.prefill(ep)
		}),
	}
}

// snapLine is a snapshot of the bench file with its COW on cow.
func snapLine(b *bench, cow string) string {
	return fmt.Sprintf("0 %d snapshot %s %s P %s", b.cfg.size/512, b.file, cow, snapChunk)
}

// freshCow makes an empty (all zeros) COW file with room for every chunk
// of a size-byte origin: one 4 KiB metadata chunk per 256 data chunks, a
// header, and a spare area. Its zeros are written before the round, as a
// COW device's blocks exist before dm writes them (a logical volume, a
// partition), and as the linear row writes into its file's existing
// pages: tmpfs allocates and clears a page at the first write to it, and
// in a VM whose host backs guest memory on first touch, the first round's
// first writes to a sparse (or only fallocated: tmpfs clears those pages
// at first use too) COW file cost several times the rest. Measured on the
// 2-core PVM VM, 2026-12-03, 1 MiB origin writes (linear 3250-3700 IOPS
// throughout): sparse, 250 IOPS at 6.4 CPU s/GiB in round 1 and 1500-1700
// at 0.7-0.8 in rounds 2 and 3; fallocated, 250 in round 1 and 2300-2400
// at 0.4 after.
func freshCow(path string, size int64) error {
	os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, 4<<20)
	for left := size + size/256 + 1<<20; left > 0; left -= int64(len(zeros)) {
		if _, err := f.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
			return err
		}
	}
	return nil
}

// gdmCreate creates a device in the gdm daemon behind control.
func gdmCreate(gdm, control, name, table string) error {
	out, err := exec.Command(gdm, "create", name, "--control", control, "--table", table).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gdm create %s: %v %s", name, err, out)
	}
	return nil
}

// prefill writes the whole device at ep once, in 1 MiB requests.
func (b *bench) prefill(ep endpoint) error {
	out, err := exec.Command("fio", "--name=prefill", "--ioengine=nbd", "--uri="+ep.uri(), "--rw=write", "--bs=1m",
		"--iodepth=8", fmt.Sprintf("--size=%d", b.cfg.size)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("prefill: %v\n%s", err, out)
	}
	return nil
}
