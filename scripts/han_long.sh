#!/bin/bash
# Han's 8-layer basis-mixture recipe (150000 steps, one cosine to 1 % of the lr) for one seed,
# from scratch, then every probe docs/results.md reports on it:
#   [OUT=out/han8l150] [ICL=build/bin/icl] [MPIRUN="mpirun -np 2 -x OMP_NUM_THREADS=1"] bash scripts/han_long.sh SEED
# Run again after an interruption, it resumes from the newest checkpoint (every 5000 steps) and
# skips the probes already done. Keep one launcher per seed: a run resumes bit-identically only
# under the number of ranks (and threads per rank) that started it. MPIRUN="" runs one process
# (OMP_NUM_THREADS threads). About 100 minutes of training on 2 cores either way (one process with
# 2 threads: 97 minutes measured, docs/benchmarks.md), then about 15 minutes of probes.
# Summary over seeds: /usr/bin/python3 scripts/claims_stats.py hanlong OUT.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash scripts/han_long.sh SEED" >&2; exit 2; }
S=$1
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-out/han8l150}
MPIRUN=${MPIRUN-mpirun -np 2 -x OMP_NUM_THREADS=1}
d=$OUT/s$S
mkdir -p "$d"

if [ ! -e "$d/model.safetensors" ]; then
    ck=$(ls "$d"/checkpoints/step_*.safetensors 2>/dev/null | sort -V | tail -n 1 || true)
    start=$(date +%s)
    # shellcheck disable=SC2086
    $MPIRUN "$ICL" train --task basis_mixture_small --layers 8 --steps 150000 --batch 64 --lr 1e-3 \
        --min-lr-frac 0.01 --seed "$S" --eval-every 2000 --checkpoint-every 5000 --log-every 500 \
        --out "$d" ${ck:+--resume "$ck"}
    echo "train wall $(($(date +%s) - start)) s (resumed from: ${ck:-none})" >> "$d/wall.txt"
fi
m=$d/model.safetensors
# each probe: skipped when its output is there (outputs are written atomically)
[ -e "$d/eval200.csv" ] || "$ICL" eval --model "$m" --prompts 200 --out "$d/eval200.csv"
[ -e "$d/decodability/td.csv" ] ||
    "$ICL" probe decodability --model "$m" --prompts 100 --seed "$S" --out "$d/decodability"
[ -e "$d/finetune/finetune.csv" ] ||
    "$ICL" probe finetune --model "$m" --n 4 --steps 1000 --seed "$S" --out "$d/finetune"
# first vs last 4 blocks finetuned on 4 held-out bases: this family's basis_0, 2, 4, 6 are the
# trained ones, basis_1, 3, 5, 7 lie across them
[ -e "$d/finetune_heldout/finetune.csv" ] ||
    "$ICL" probe finetune --model "$m" --n 4 --steps 1000 --seed "$S" \
        --train-task 'basis_mixture:D=8,k=8,r=2,K=12,groups=1' --tasks basis_1,basis_3,basis_5,basis_7 \
        --out "$d/finetune_heldout"
# patching: each basis's mean query residual (12-example prompts) minus the targets' mean, added
# into 3-example prompts of every basis, at every level
[ -e "$d/patch_add3/matrix.csv" ] ||
    "$ICL" probe task-vectors --model "$m" --mode add --target-examples 3 --prompts 100 --eval-prompts 200 \
        --seed "$S" --out "$d/patch_add3" > "$d/patch_add3.log"
# TD against the query error at every checkpoint (Han's Fig. 4)
[ -e "$d/td_error/td_error.csv" ] || bash scripts/han_td.sh "$ICL" "$m" "$d" "$S"
echo "all done $(date -u +%FT%TZ)" >> "$d/wall.txt"
