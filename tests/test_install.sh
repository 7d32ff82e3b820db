#!/bin/bash
# make install into a fresh prefix, then, with no LD_LIBRARY_PATH: the
# installed icl starts and trains, and a program built with
# `pkg-config --cflags --libs icl` (examples/quickstart.c) links and runs.
# Run from the repository root after the build; MAKE may name the make to use.
set -uo pipefail
. tests/shell_check.sh
unset LD_LIBRARY_PATH
# One thread: the quickstart trains 500 steps, and spinning OpenMP threads crawl on a busy machine.
export OMP_NUM_THREADS=1
prefix=$(mktemp -d /tmp/icl-install.XXXXXX)
work=$(mktemp -d /tmp/icl-install-work.XXXXXX)
trap 'rm -rf "$prefix" "$work"' EXIT

check "make install PREFIX=$prefix" ${MAKE:-make} --no-print-directory install PREFIX="$prefix"
# --version needs libicl.so loaded before main; the tiny run and info use it.
check "installed icl --version" "$prefix/bin/icl" --version
check "installed icl trains" "$prefix/bin/icl" train --task copy --layers 1 --d-model 8 --heads 1 --symbols 4 \
    --length 2 --steps 2 --batch 2 --quiet --out "$work/run"
check "installed icl info" "$prefix/bin/icl" info "$work/run/model.safetensors"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
build_quickstart() {
    # shellcheck disable=SC2046
    ${CC:-cc} -std=c11 -o "$work/quickstart" examples/quickstart.c $(pkg-config --cflags --libs icl)
}
check "quickstart builds with pkg-config icl" build_quickstart
check "quickstart runs and saves" bash -c "cd '$work' && ./quickstart && test -s copy.safetensors"
check "quickstart links the installed libicl" \
    bash -c "ldd '$work/quickstart' | grep -q '$prefix/lib/libicl.so'"
# A probe written against the installed public headers alone (docs/architecture.md).
build_answer_rank() {
    # shellcheck disable=SC2046
    ${CC:-cc} -std=c11 -o "$work/answer_rank" examples/answer_rank.c $(pkg-config --cflags --libs icl) -lm
}
check "answer_rank builds with pkg-config icl" build_answer_rank
check "installed icl trains a task family" "$prefix/bin/icl" train --task retrieval:A=6,L=3,tasks=3,n=2 \
    --layers 1 --d-model 16 --heads 2 --steps 2 --batch 4 --quiet --out "$work/fam"
check "answer_rank runs on it" bash -c "'$work/answer_rank' '$work/fam/model.safetensors' | grep -q '^# answer_rank'"
check_summary
