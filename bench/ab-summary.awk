# Summary of bench/ab.sh's rows (round server IOPS syscalls/r ctxsw/r
# CPU-us/r load): per server the medians over the rounds, and the median
# (lowest..highest) of each round's IOPS and CPU-per-request ratio to the
# first server of the round.
{
	r = $1; s = $2
	if (!(s in seen)) { seen[s] = 1; order[++ns] = s }
	iops[s, r] = $3; sc[s, r] = $4; cs[s, r] = $5; cpu[s, r] = $6
	if (!(r in rseen)) { rseen[r] = 1; rounds[++nr] = r }
	if (load == "" || $7 < lo) lo = $7
	if (load == "" || $7 > hi) hi = $7
	load = 1
}
# sort sorts a[1..n] in place (n is small: one value per round).
function sort(a, n,   i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
}
function median(a, n) { sort(a, n); return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
function pct(x) { return sprintf("%+.0f%%", (x - 1) * 100) }
END {
	if (ns == 0) exit
	ref = order[1]
	printf "Medians of %d rounds (load average %s to %s); ratios to %s, per round: median (lowest..highest)\n", nr, lo, hi, ref
	printf "%-28s %9s %10s %9s %11s %22s %22s\n", "server", "IOPS", "syscalls/r", "ctxsw/r", "CPU us/r", "IOPS vs " ref, "CPU/r vs " ref
	for (k = 1; k <= ns; k++) {
		s = order[k]; n = 0
		split("", a); split("", b); split("", c); split("", d); split("", e); split("", f)
		for (i = 1; i <= nr; i++) {
			r = rounds[i]
			if (!((s, r) in iops) || !((ref, r) in iops) || iops[ref, r] == 0 || cpu[ref, r] == 0) continue
			n++
			a[n] = iops[s, r]; b[n] = sc[s, r]; c[n] = cs[s, r]; d[n] = cpu[s, r]
			e[n] = iops[s, r] / iops[ref, r]; f[n] = cpu[s, r] / cpu[ref, r]
		}
		if (n == 0) continue
		mi = median(a, n); mb = median(b, n); mc = median(c, n); md = median(d, n)
		me = median(e, n); e1 = e[1]; en = e[n]
		mf = median(f, n); f1 = f[1]; fn = f[n]
		printf "%-28s %9.0f %10.2f %9.2f %11.1f %22s %22s\n", s, mi, mb, mc, md,
			pct(me) " (" pct(e1) ".." pct(en) ")", pct(mf) " (" pct(f1) ".." pct(fn) ")"
	}
}
