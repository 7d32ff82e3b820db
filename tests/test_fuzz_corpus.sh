#!/bin/bash
# Replay each fuzz target over its seed corpus (fuzz/corpus/<name>), every
# input once, no fuzzing: the parsers still take their real files and the
# inputs earlier campaigns kept without a sanitizer report. Needs
# `make fuzz-build`; FUZZ_BUILD names its tree (build-fuzz).
set -uo pipefail
. tests/shell_check.sh
dir=${FUZZ_BUILD:-build-fuzz}/fuzz
export OMP_NUM_THREADS=1
replay() {
    local bin=$1 corpus=$2 out
    out=$("$bin" -runs=0 -close_fd_mask=3 -rss_limit_mb=2048 -timeout=30 "$corpus" 2>&1) || {
        printf '%s\n' "$out" | grep -v '^#\|^INFO' | tail -n 30
        return 1
    }
    printf '%s\n' "$out" | grep -E 'DONE' | tail -n 1
}
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    check "$name over fuzz/corpus/${name#fuzz_} ($(ls "fuzz/corpus/${name#fuzz_}" | wc -l) inputs)" \
        replay "$dir/$name" "fuzz/corpus/${name#fuzz_}"
done
check_summary
