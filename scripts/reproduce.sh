#!/bin/bash
# Reproduce the experiments of docs/results.md on our tiny models, over seeds:
#   [OUT=out/results] [SEEDS="1 2 3"] [PARTS="xiong han garg"] bash scripts/reproduce.sh
# Each experiment writes its CSV/NPY/JSON and PNG files under OUT/<paper>/s<seed>/;
# OUT/commands.log lists every command. On 2 cores: xiong about 5 minutes per seed,
# han about 7, garg 4.
set -uo pipefail
shopt -s nullglob  # a PARTS subset leaves some result folders absent
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-out/results}
SEEDS=${SEEDS:-1 2 3}
PARTS=${PARTS:-xiong han garg}
HAN_STEPS=${HAN_STEPS:-8000}
XIONG_TASK="retrieval"
HAN_TASK="basis_mixture_small"

run() { # run a command, log it, keep going if it fails (the log says so)
    echo "+ $*" >> "$OUT/commands.log"
    "$@" > "$LOG" 2>&1 || echo "FAILED ($?): $*" | tee -a "$OUT/commands.log"
}

# Task vectors written into the residual (REPLACE) and added as v - mean of the targets (ADD):
# task_vectors DIR MODEL SEED PROMPTS
task_vectors() {
    LOG="$1/task-vectors.log" run "$ICL" probe task-vectors --model "$2" --prompts "$4" --eval-prompts "$4" \
        --seed "$3" --out "$1/task-vectors"
    LOG="$1/task-vectors-add.log" run "$ICL" probe task-vectors --model "$2" --mode add --prompts "$4" \
        --eval-prompts "$4" --seed "$3" --out "$1/task-vectors-add"
}

# Xiong: superposition, task vectors, decodability, logit lens; Yousefi: RSA and attention
xiong() {
    local s=$1 d="$OUT/xiong/s$1" m="$OUT/xiong/s$1/model/model.safetensors"
    mkdir -p "$d"
    LOG="$d/train.log" run "$ICL" train --task "$XIONG_TASK" --layers 3 --short-prompts 2 --short-steps 3000 \
        --steps 4000 --batch 32 --lr 1e-3 --seed "$s" --eval-every 250 --checkpoint-every 500 --out "$d/model"
    LOG="$d/eval.log" run "$ICL" eval --model "$m" --prompts 100 --out "$d/model/eval.csv"
    LOG="$d/superposition.log" run "$ICL" probe superposition --model "$m" --prompts 100 --seed "$s" --out "$d/superposition"
    task_vectors "$d" "$m" "$s" 50
    LOG="$d/decodability.log" run "$ICL" probe decodability --model "$m" --prompts 100 --seed "$s" \
        --checkpoints "$d/model/checkpoints" --out "$d/decodability"
    LOG="$d/logit-lens.log" run "$ICL" probe logit-lens --model "$m" --prompts 50 --seed "$s" --out "$d/logit-lens"
    LOG="$d/rsa.log" run "$ICL" probe rsa --model "$m" --prompts 40 --perm 200 --seed "$s" --out "$d/rsa"
    LOG="$d/attention.log" run "$ICL" probe attention --model "$m" --prompts 40 --seed "$s" --out "$d/attention"
}

# Han: per-basis loss and decodability over training, patching matrix, partial finetuning
han() {
    local s=$1 d="$OUT/han/s$1" m="$OUT/han/s$1/model/model.safetensors"
    mkdir -p "$d"
    LOG="$d/train.log" run "$ICL" train --task "$HAN_TASK" --layers 3 --steps "$HAN_STEPS" --batch 64 --lr 1e-3 \
        --seed "$s" --eval-every 250 --checkpoint-every 500 --out "$d/model"
    LOG="$d/eval.log" run "$ICL" eval --model "$m" --prompts 200 --out "$d/model/eval.csv"
    LOG="$d/decodability.log" run "$ICL" probe decodability --model "$m" --prompts 100 --seed "$s" \
        --checkpoints "$d/model/checkpoints" --out "$d/decodability"
    task_vectors "$d" "$m" "$s" 100
    LOG="$d/finetune.log" run "$ICL" probe finetune --model "$m" --n 1 --steps 300 --seed "$s" --out "$d/finetune"
}

# Garg's toy linear regression (d = 5): error against the number of examples, with baselines
garg() {
    local d="$OUT/garg/s1"
    mkdir -p "$d"
    LOG="$d/train.log" run "$ICL" train --task linear_toy --layers 4 --steps 5000 --batch 64 --lr 1e-3 --seed 1 \
        --eval-every 500 --out "$d/model"
    LOG="$d/eval.log" run "$ICL" eval --model "$d/model/model.safetensors" --prompts 1000 --out "$d/model/eval.csv"
}

mkdir -p "$OUT"
echo "# $(date -u +%FT%TZ) PARTS=\"$PARTS\" SEEDS=\"$SEEDS\"" >> "$OUT/commands.log"
for s in $SEEDS; do
    for part in xiong han; do
        case " $PARTS " in *" $part "*) "$part" "$s" ;; esac
    done
done
case " $PARTS " in *" garg "*) garg ;; esac

# Figures (PNG) next to each run's CSV files
for d in "$OUT"/xiong/s*; do
    gnuplot -e "dir='$d/model'" scripts/plot_training.gp
    gnuplot -e "in='$d/superposition/superposition.csv'; out='$d/superposition/superposition.png'" scripts/plot_superposition.gp
    gnuplot -e "dir='$d/task-vectors'" scripts/plot_task_vectors.gp
    gnuplot -e "dir='$d/task-vectors-add'" scripts/plot_task_vectors.gp
    gnuplot -e "in='$d/decodability/td_steps.csv'; out='$d/decodability/td_steps.png'; plot='steps'" scripts/plot_decodability.gp
    gnuplot -e "in='$d/logit-lens/logit_lens.csv'; out='$d/logit-lens/logit_lens.png'" scripts/plot_lens.gp
    gnuplot -e "in='$d/rsa/rsa.csv'; out='$d/rsa/rsa.png'" scripts/plot_rsa.gp
    gnuplot -e "in='$d/attention/attention.csv'; out='$d/attention/attention.png'; plot='roles'" scripts/plot_attention.gp
done
for d in "$OUT"/han/s* "$OUT"/garg/s*; do
    gnuplot -e "dir='$d/model'" scripts/plot_training.gp
done
for d in "$OUT"/han/s*; do
    gnuplot -e "in='$d/decodability/td_steps.csv'; out='$d/decodability/td_steps.png'; plot='steps'" scripts/plot_decodability.gp
    gnuplot -e "dir='$d/task-vectors'" scripts/plot_task_vectors.gp
    gnuplot -e "in='$d/finetune/finetune.csv'; out='$d/finetune/finetune.png'" scripts/plot_finetune.gp
done 2>/dev/null
# The figures docs/results.md shows (seed 1): cp "$OUT"/figures/*.png docs/figures/
mkdir -p "$OUT/figures"
first=${SEEDS%% *}
while read -r src dst; do
    [ -e "$OUT/$src" ] && cp "$OUT/$src" "$OUT/figures/$dst"
done <<FIGURES
xiong/s$first/superposition/superposition.png xiong_superposition.png
xiong/s$first/superposition/superposition_tasks.png xiong_superposition_tasks.png
xiong/s$first/task-vectors/interpolation.png xiong_interpolation.png
xiong/s$first/logit-lens/logit_lens.png xiong_logit_lens.png
xiong/s$first/decodability/td_steps.png xiong_decodability_steps.png
xiong/s$first/rsa/rsa.png yousefi_rsa.png
xiong/s$first/attention/attention.png yousefi_attention.png
han/s$first/model/task_curves.png han_per_basis.png
han/s$first/model/eval_by_examples.png han_error_by_k.png
han/s$first/decodability/td_steps.png han_decodability_steps.png
han/s$first/finetune/finetune.png han_finetune.png
garg/s1/model/eval_by_examples.png garg_error_by_k.png
FIGURES
echo "done" >> "$OUT/commands.log"
