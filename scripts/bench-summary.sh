#!/usr/bin/env bash
# bench-summary.sh - the speed and memory targets of `scripts/bench.sh`
# (issue #17's, as the README's "Against PyTorch" lists them), read back from a
# bench's output, each marked held or MISSED, so that whether one run met
# them all needs no reading of its two hundred lines:
#
#   scripts/bench-summary.sh [FILE...]     (no FILE: standard input)
#
# An op is at or below PyTorch's time when the median of its rounds'
# ratios is (bench-ops.sh's last column; where that prints as 1.00, when
# its median time is). bf16 sampling's rate is shown, not judged (the
# sampling target is the default precision's). `bench.sh` prints this at
# the end of its own run; a saved run (docs/bench/*.txt) reads the same.
# Targets whose part is not in the output are named as absent. Exit
# status 0 when every target present held, 1 when one was missed, 2 when
# the output held none of them.
set -euo pipefail
cat -- "$@" | awk '
function verdict(ok) { return ok ? "held  " : "MISSED" }
function say(ok, text) { printf "%s  %s\n", verdict(ok), text; n++; if (ok) good++ }
# "... = X (target ...)" and the like: the number after `key`
function after(line, key,    i, rest) {
    i = index(line, key)
    if (!i) return ""
    rest = substr(line, i + length(key))
    sub(/^[ =:]+/, "", rest)
    sub(/[ ,(].*/, "", rest)
    return rest
}
/^== forward\+backward per op/ { ops = 1; next }
ops && /^load average after/ { ops = 0; next }
ops && /^op / { next }
ops && NF >= 4 {
    gen = $(NF - 2); torch = $(NF - 1); ratio = $NF
    if (gen ~ /^[0-9.]+$/ && torch ~ /^[0-9.]+$/ && ratio ~ /^[0-9.]+$/) {
        nops++
        # the median of the per-round ratios, as bench-ops.sh prints it; where
        # that rounds to 1.00, the medians of the times decide
        if (ratio + 0 > 1 || (ratio + 0 == 1 && gen + 0 > torch + 0)) {
            name = $1
            for (i = 2; i <= NF - 3; i++) name = name " " $i
            over = over (over ? "; " : "") name " (" $NF ")"
        }
    }
    next
}
/^vae train step/ { vae = after($0, "gen/pytorch") }
/^gan step/ { gan = after($0, "median gen/pytorch") }
/^transformer train, batch/ && /speed-up over pytorch/ { tf = after($0, "speed-up over pytorch") }
/^diffusion, [0-9]+ threads: train step/ {
    dif = after($0, "gen/pytorch"); ddim = after($0, "images gen/pytorch")
}
/^transformer, [0-9]+ threads: bf16\/fp32 step/ { tfb = after($0, "step") }
/^diffusion, [0-9]+ threads: bf16\/fp32 step/ { difb = after($0, "step") }
/^gen on the large rows:/ {
    split($0, p, /[ %]+/)
    for (i in p) if (p[i] == "rows:") lo = p[i + 1]
    gemm = $0; sub(/^gen on the large rows: /, "", gemm)
}
/^sample batch 1, (fp32|bf16), [0-9]+ thread\(s\), length/ {
    split($0, f, /, /); prec = f[2]; thr = f[3] + 0
    if (thr > maxthr) maxthr = thr
    len = after($0, "length"); sub(/:$/, "", len)
    rate = $0; sub(/^[^:]*: */, "", rate); sub(/ .*/, "", rate)
    key = prec SUBSEP thr
    lens[key] = lens[key] (lens[key] ? " / " : "") len
    rates[key] = rates[key] (rates[key] ? " / " : "") rate
    if (!(key in low) || rate + 0 < low[key]) low[key] = rate + 0
}
/^size +gen ms +torch ms/ { scale = 1; next }
scale && NF >= 7 && $NF ~ /^[0-9.]+$/ {
    nmem++
    if ($NF + 0 > 1.0) {
        name = $1
        for (i = 2; i <= NF - 6; i++) name = name " " $i
        memover = memover (memover ? "; " : "") name " (" $NF ")"
    }
    next
}
scale && !NF { scale = 0 }
END {
    print "== targets (issue #17; README, Against PyTorch) in this output"
    if (vae != "") say(vae + 0 <= 0.5, "VAE step gen/PyTorch " vae " (<= 0.5)")
    if (gan != "") say(gan + 0 <= 0.5, "GAN step gen/PyTorch " gan " (<= 0.5)")
    if (tf != "")
        say(tf + 0 >= 2, sprintf("Transformer step gen/PyTorch %.3f (speed-up %s; <= 0.5)", \
                                 1 / (tf + 0), tf))
    if (dif != "") say(dif + 0 <= 0.5, "diffusion step gen/PyTorch " dif " (<= 0.5)")
    if (ddim != "") say(ddim + 0 <= 0.5, "DDIM-50 sampling gen/PyTorch " ddim " (<= 0.5)")
    key = "fp32" SUBSEP maxthr
    if (key in low)
        say(low[key] >= 20000, "KV sampling, batch 1, fp32, " maxthr " threads: " rates[key] \
            " tokens/s at length " lens[key] " (>= 20000 at each)")
    key = "bf16" SUBSEP maxthr # shown, not judged
    if (key in low)
        printf "info    KV sampling, batch 1, bf16, %d threads: %s tokens/s\n", maxthr, \
               rates[key]
    if (tfb != "") say(tfb + 0 <= 0.6, "--precision bf16 step / fp32, Transformer " tfb " (<= 0.6)")
    if (difb != "")
        say(difb + 0 <= 0.6, "--precision bf16 step / fp32, diffusion " difb " (<= 0.6)")
    if (gemm != "") say(lo + 0 >= 75, "GEMM on the large rows: " gemm " (>= 75 % each)")
    if (nops)
        say(over == "", "every op of bench.sh ops at or below PyTorch\047s time: " \
            (over == "" ? nops " of " nops : "over: " over))
    if (nmem)
        say(memover == "", "peak memory at or below the twin\047s (bench.sh scale): " \
            (memover == "" ? nmem " of " nmem " sizes" : "over: " memover))
    if (!n) { print "no target of bench.sh in this output"; exit 2 }
    absent = (vae == "" ? " vae" : "") (gan == "" ? " gan" : "") (tf == "" ? " transformer" : "") \
             (dif == "" ? " diffusion" : "") (tfb == "" ? " precision" : "") (nops ? "" : " ops") \
             (nmem ? "" : " scale")
    printf "%d of %d held%s\n", good, n, absent == "" ? "" : "; parts absent:" absent
    exit good == n ? 0 : 1
}'
