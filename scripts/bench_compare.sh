#!/bin/bash
# icl bench next to PyTorch eager (scripts/bench_pytorch.py) on the same rows,
# one after the other on the same device, then the ratio table: tokens/s of
# icl over PyTorch, and PyTorch's peak RSS over icl's. See docs/benchmarks.md.
#   DEVICE=cpu|cuda  THREADS=2  BENCH_SECONDS=3  STEPS=0  CONFIG=all  OUT=dir  bash scripts/bench_compare.sh
# STEPS > 0 times exactly that many steps per row instead of BENCH_SECONDS
# (a smoke run); OUT keeps both raw tables. Run it on an idle machine.
# ROUNDS=N (N > 1) instead alternates icl and PyTorch N times per config, one config at a
# time, and prints each side's median tokens/s with its range, the median of the per-round
# ratios and the ratio of each side's fastest round (the least disturbed run of each): on a
# shared machine whose speed drifts by tens of percent between minutes, only interleaved rounds
# give a ratio worth quoting.
set -euo pipefail
ICL=${ICL:-build/bin/icl}
PYTHON=${PYTHON:-/usr/bin/python3}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
BENCH_SECONDS=${BENCH_SECONDS:-3}
STEPS=${STEPS:-0}
CONFIG=${CONFIG:-all}
OUT=${OUT:-}
ROUNDS=${ROUNDS:-1}

[ -x "$ICL" ] || { echo "bench_compare.sh: $ICL not found: run make first" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null ||
    { echo "bench_compare.sh: $PYTHON has no torch (Debian: apt-get install python3-torch)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The rows of a table (a file, or standard input): config in field 2, tokens/s in field 8, peak
# RSS MB in field 11, forward tokens/s in 12.
rows() { awk -F'|' 'NF >= 13 && $2 !~ /config|---/ { gsub(/ /, ""); print $2, $8, $11, $12 }' "${1:--}"; }

if [ "$ROUNDS" -gt 1 ]; then
    configs=$CONFIG
    [ "$CONFIG" = all ] && configs="tiny small medium retrieval han"
    # one line per measurement: config round side tokens/s
    for c in $configs; do
        for r in $(seq "$ROUNDS"); do
            OMP_NUM_THREADS=$THREADS "$ICL" bench --backend "$DEVICE" --config "$c" --seconds "$BENCH_SECONDS" \
                --steps "$STEPS" --no-peak | rows | awk -v r="$r" '{ print $1, r, "icl", $2 }'
            "$PYTHON" scripts/bench_pytorch.py --device "$DEVICE" --threads "$THREADS" --config "$c" \
                --seconds "$BENCH_SECONDS" --steps "$STEPS" | rows | awk -v r="$r" '{ print $1, r, "torch", $2 }'
        done
    done | tee "$tmp/rounds.txt"
    [ -n "$OUT" ] && mkdir -p "$OUT" && cp "$tmp/rounds.txt" "$OUT/rounds.txt"
    echo
    echo "== icl / PyTorch on $DEVICE, $ROUNDS interleaved rounds (OMP_NUM_THREADS=$THREADS): median [min, max]"
    echo "| config    | icl tokens/s             | torch tokens/s           | icl / torch           | fastest / fastest |"
    echo "|-----------|--------------------------|--------------------------|-----------------------|-------------------|"
    "$PYTHON" - "$tmp/rounds.txt" $configs <<'PY'
import statistics
import sys

runs = {}
for line in open(sys.argv[1]):
    config, rnd, side, tokens = line.split()
    runs.setdefault(config, {}).setdefault(rnd, {})[side] = float(tokens)
def cell(xs, fmt):
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}, {fmt.format(max(xs))}]"
for config in sys.argv[2:]:
    rounds = [r for r in runs.get(config, {}).values() if "icl" in r and "torch" in r]
    if not rounds:
        print(f"| {config:<9} | no complete round |")
        continue
    icl = [r["icl"] for r in rounds]
    torch = [r["torch"] for r in rounds]
    ratio = [r["icl"] / r["torch"] for r in rounds]
    best = max(icl) / max(torch)
    print(f"| {config:<9} | {cell(icl, '{:.0f}'):<24} | {cell(torch, '{:.0f}'):<24} | {cell(ratio, '{:.2f}'):<21} "
          f"| {best:<17.2f} |")
PY
    exit 0
fi

echo "== icl bench --backend $DEVICE (OMP_NUM_THREADS=$THREADS)"
OMP_NUM_THREADS=$THREADS "$ICL" bench --backend "$DEVICE" --config "$CONFIG" --seconds "$BENCH_SECONDS" \
    --steps "$STEPS" | tee "$tmp/icl.md"
echo
echo "== PyTorch eager, --device $DEVICE --threads $THREADS"
"$PYTHON" scripts/bench_pytorch.py --device "$DEVICE" --threads "$THREADS" --config "$CONFIG" \
    --seconds "$BENCH_SECONDS" --steps "$STEPS" | tee "$tmp/torch.md"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$tmp/icl.md" "$OUT/icl.md"
    cp "$tmp/torch.md" "$OUT/torch.md"
fi

echo
echo "== icl / PyTorch on $DEVICE"
echo "| config    | icl tokens/s | torch tokens/s | icl / torch | icl RSS MB | torch RSS MB | torch / icl RSS | icl fwd tok/s | torch fwd tok/s | fwd icl / torch |"
echo "|-----------|--------------|----------------|-------------|------------|--------------|-----------------|---------------|-----------------|-----------------|"
join <(rows "$tmp/icl.md" | sort) <(rows "$tmp/torch.md" | sort) |
    awk -v order="tiny small medium retrieval han" '
        BEGIN { n = split(order, o, " ") }
        { it[$1] = $2; ir[$1] = $3; ifw[$1] = $4; tt[$1] = $5; tr[$1] = $6; tfw[$1] = $7; seen[$1] = 1 }
        END {
            for (i = 1; i <= n; i++) {
                c = o[i]
                if (!seen[c]) continue
                printf "| %-9s | %12.0f | %14.0f | %10.2fx | %10.1f | %12.1f | %14.2fx | %13.0f | %15.0f | %14.2fx |\n",
                    c, it[c], tt[c], it[c] / tt[c], ir[c], tr[c], tr[c] / ir[c], ifw[c], tfw[c], ifw[c] / tfw[c]
            }
        }'
