#!/bin/bash
# Two or more builds of icl on one config, alternating, so that the machine's drift falls on all
# of them alike: prints each build's fastest and median step time (ms) over the rounds.
#   [THREADS=2] [STEPS=60] [ROUNDS=8] bash scripts/bench_ab.sh CONFIG DIR...
# DIR is a build tree or a frozen copy of one (DIR/bin/icl; its libicl.so beside bin/ or in
# DIR/lib). On a shared machine a change below a few per cent needs the fastest times of many
# rounds; the medians say how steady the round was. docs/benchmarks.md shows its use.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/bench_ab.sh CONFIG DIR..." >&2; exit 2; }
CONFIG=$1
shift
THREADS=${THREADS:-2}
STEPS=${STEPS:-60}
ROUNDS=${ROUNDS:-8}
for d in "$@"; do
    [ -x "$d/bin/icl" ] || { echo "bench_ab.sh: $d/bin/icl is not an executable" >&2; exit 2; }
done
times=$(mktemp)
trap 'rm -f "$times"' EXIT
for _ in $(seq "$ROUNDS"); do
    for d in "$@"; do
        ms=$(OMP_NUM_THREADS=$THREADS "$d/bin/icl" bench --config "$CONFIG" --steps "$STEPS" --no-peak |
            awk -F'|' -v c="$CONFIG" '$2 ~ "^ *" c " *$" {gsub(/ /, "", $7); print $7}')
        [ -n "$ms" ] || { echo "bench_ab.sh: no '$CONFIG' row from $d/bin/icl bench" >&2; exit 1; }
        echo "$d $ms" >> "$times"
    done
done
echo "$CONFIG, $THREADS threads, $STEPS steps, $ROUNDS rounds: step ms"
for d in "$@"; do
    awk -v d="$d" '$1 == d {print $2}' "$times" | sort -n |
        awk -v d="$d" '{v[NR] = $1} END {
            printf "%-28s fastest %7.1f  median %7.1f  all", d, v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)
            for (i = 1; i <= NR; i++) printf " %.1f", v[i]
            printf "\n"
        }'
done
