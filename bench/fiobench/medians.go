package main

// Medians over rounds, and the ratios the report prints.

import (
	"fmt"
	"math"
	"slices"
)

func names(servers []server) []string {
	var ns []string
	for _, s := range servers {
		ns = append(ns, s.name)
	}
	return ns
}

// pct prints a signed whole percentage, never "-0".
func pct(x float64) string {
	return fmt.Sprintf("%+d", int(math.Round(x)))
}

// mid is the median of sorted v.
func mid(v []float64) float64 {
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// median takes each column's median over the rounds (a failed round is
// left out); false if every round failed.
func median(all []result) (result, bool) {
	var rs []result
	for _, r := range all {
		if r.iops > 0 {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return result{}, false
	}
	col := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return mid(v)
	}
	return result{
		iops:      col(func(r result) float64 { return r.iops }),
		mibs:      col(func(r result) float64 { return r.mibs }),
		cpuPerGiB: col(func(r result) float64 { return r.cpuPerGiB }),
	}, true
}
