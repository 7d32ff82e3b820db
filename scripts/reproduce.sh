#!/bin/bash
# Reproduce the experiments of docs/results.md on our tiny models, over seeds:
#   [OUT=out/results] [SEEDS="1 2 3"] [PARTS="xiong han garg scale han_td tv"] [MPIRUN="mpirun -np 3"] bash scripts/reproduce.sh
# (PARTS="hanlong" adds Han's 150000-step 8-layer recipe per seed, scripts/han_long.sh: about 2 hours each;
# PARTS="garglong" Garg's linear regression at 30000 steps per seed, about 11-16 minutes each.)
# Each paper is an `icl sweep` (docs/scaling.md): its description is written to OUT/<paper>.sweep
# and every run (the training, then its probes) goes to OUT/<paper>/<task>_L<layers>_d<width>_s<seed>/.
# Finished runs are skipped, so an interrupted reproduction continues where it stopped; with
# MPIRUN the runs are spread over its ranks. Each sweep ends with `icl sweep summarize`: mean ± sd
# tables over the seeds in OUT/<paper>/summary/. OUT/commands.log lists every command.
# On 2 cores: xiong about 5 minutes per seed, han about 7, garg 4; on one core (OMP_NUM_THREADS=1)
# see docs/results.md, "Claims", for scale, han_td and tv.
set -uo pipefail
shopt -s nullglob  # a PARTS subset leaves some result folders absent
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-out/results}
SEEDS=${SEEDS:-1 2 3}
PARTS=${PARTS:-xiong han garg scale han_td tv}
HAN_STEPS=${HAN_STEPS:-8000}
SCALE_SIZES=${SCALE_SIZES:-3x64 1x32 2x48 4x80}
MPIRUN=${MPIRUN:-}
XIONG_TASK="retrieval"
HAN_TASK="basis_mixture_small"
TV_TASK="translation:K=4"

# sweep NAME < description: write OUT/NAME.sweep, run it (keep going if a run fails: its
# run.log says why), summarise it.
sweep() {
    local name=$1
    cat > "$OUT/$name.sweep"
    echo "+ $MPIRUN $ICL sweep run $OUT/$name.sweep --out $OUT/$name" >> "$OUT/commands.log"
    # shellcheck disable=SC2086
    $MPIRUN "$ICL" sweep run "$OUT/$name.sweep" --out "$OUT/$name" 2>&1 | tee -a "$OUT/commands.log" ||
        echo "FAILED: sweep $name (see each run's run.log)" | tee -a "$OUT/commands.log"
    "$ICL" sweep summarize "$OUT/$name" >> "$OUT/commands.log" 2>&1
}

# The after-lines of a probe: probe NAME OPTIONS... runs `icl probe NAME --model $MODEL OPTIONS`
# with its output in $RUN/NAME-or-dir and its log beside it. $ICL, $MODEL, $RUN and $SEED are
# set by icl sweep for each run.
probe() {
    local name=$1 dir=$2
    shift 2
    echo "after \$ICL probe $name --model \"\$MODEL\" $* --out \"\$RUN/$dir\" > \"\$RUN/$dir.log\" 2>&1"
}
evaluate() {
    echo "after \$ICL eval --model \"\$MODEL\" --prompts $1 --out \"\$RUN/model/eval.csv\" > \"\$RUN/eval.log\" 2>&1"
}
# Task vectors written into the residual (REPLACE) and added as v - mean of the targets (ADD)
task_vectors() {
    probe task-vectors task-vectors --prompts "$1" --eval-prompts "$1" --seed '$SEED'
    probe task-vectors task-vectors-add --mode add --prompts "$1" --eval-prompts "$1" --seed '$SEED'
}

mkdir -p "$OUT"
echo "# $(date -u +%FT%TZ) PARTS=\"$PARTS\" SEEDS=\"$SEEDS\"" >> "$OUT/commands.log"

# Xiong: superposition, task vectors, decodability, logit lens; Yousefi: RSA and attention
case " $PARTS " in *" xiong "*) sweep xiong <<SWEEP
seeds $SEEDS
sizes 3x64
tasks $XIONG_TASK
train --short-prompts 2 --short-steps 3000 --steps 4000 --batch 32 --lr 1e-3 --eval-every 250 --checkpoint-every 500
$(evaluate 100)
$(probe superposition superposition --prompts 100 --seed '$SEED')
$(task_vectors 50)
$(probe decodability decodability --prompts 100 --seed '$SEED' --checkpoints '"$RUN/model/checkpoints"')
$(probe logit-lens logit-lens --prompts 50 --seed '$SEED')
$(probe rsa rsa --prompts 40 --perm 200 --seed '$SEED')
$(probe attention attention --prompts 40 --seed '$SEED')
SWEEP
;; esac

# Han: per-basis loss and decodability over training, patching matrix, partial finetuning
case " $PARTS " in *" han "*) sweep han <<SWEEP
seeds $SEEDS
sizes 3x64
tasks $HAN_TASK
train --steps $HAN_STEPS --batch 64 --lr 1e-3 --eval-every 250 --checkpoint-every 500
$(evaluate 200)
$(probe decodability decodability --prompts 100 --seed '$SEED' --checkpoints '"$RUN/model/checkpoints"')
$(task_vectors 100)
$(probe finetune finetune --n 1 --steps 300 --seed '$SEED')
SWEEP
;; esac

# Garg's toy linear regression (d = 5): error against the number of examples, with baselines
case " $PARTS " in *" garg "*) sweep garg <<SWEEP
seeds 1
sizes 4x64
tasks linear_toy
train --steps 5000 --batch 64 --lr 1e-3 --eval-every 500
$(evaluate 1000)
SWEEP
;; esac

# The same at 30000 steps, over seeds: about 11-16 minutes per seed on 2 cores (opt-in: garglong)
case " $PARTS " in *" garglong "*) sweep garglong <<SWEEP
seeds $SEEDS
sizes 4x64
tasks linear_toy
train --steps 30000 --batch 64 --lr 1e-3 --eval-every 2000
$(evaluate 1000)
SWEEP
;; esac

# Yousefi's k-sweep (accuracy, RSA and attention per number of examples, per task) and Xiong's
# superposition, on retrieval models of several sizes (the xiong recipe); the 3x64 runs come first
case " $PARTS " in *" scale "*) sweep scale <<SWEEP
seeds $SEEDS
sizes $SCALE_SIZES
tasks $XIONG_TASK
train --short-prompts 2 --short-steps 3000 --steps 4000 --batch 32 --lr 1e-3 --eval-every 250 --checkpoint-every 500
$(evaluate 100)
after bash scripts/k_sweep.sh "\$ICL" "\$MODEL" "\$RUN" "\$SEED" > "\$RUN/ksweep.log" 2>&1
$(probe superposition superposition --prompts 100 --seed '$SEED')
SWEEP
;; esac

# Han: task decodability and query error at every checkpoint (every 1000 steps), per basis
case " $PARTS " in *" han_td "*) sweep han_td <<SWEEP
seeds $SEEDS
sizes 3x64
tasks $HAN_TASK
train --steps $HAN_STEPS --batch 64 --lr 1e-3 --eval-every 250 --checkpoint-every 1000
$(evaluate 200)
after bash scripts/han_td.sh "\$ICL" "\$MODEL" "\$RUN" "\$SEED" > "\$RUN/han_td.log" 2>&1
SWEEP
;; esac

# Xiong's task-vector composition on a family whose task is "which output alphabet": zero-shot
# transfer (REPLACE and ADD), interpolation, and where the vector of a half-and-half prompt lies
case " $PARTS " in *" tv "*) sweep tv <<SWEEP
seeds $SEEDS
sizes 2x64
tasks $TV_TASK
train --steps 1500 --batch 32 --lr 2e-3 --eval-every 250
$(evaluate 100)
$(task_vectors 100)
SWEEP
;; esac

# Han's 150000-step 8-layer recipe, one seed after the other (about 2 hours each on 2 cores; not in
# the default PARTS): PARTS="hanlong" bash scripts/reproduce.sh. Its runs go to OUT/hanlong/s<seed>.
case " $PARTS " in *" hanlong "*)
    for s in $SEEDS; do
        echo "+ OUT=$OUT/hanlong bash scripts/han_long.sh $s" >> "$OUT/commands.log"
        OUT="$OUT/hanlong" ICL="$ICL" bash scripts/han_long.sh "$s" >> "$OUT/commands.log" 2>&1 ||
            echo "FAILED: han_long.sh $s" | tee -a "$OUT/commands.log"
    done
    ;; esac

# Figures (PNG) next to each run's CSV files
for d in "$OUT"/xiong/*_s*/; do
    d=${d%/}
    gnuplot -e "dir='$d/model'" scripts/plot_training.gp
    gnuplot -e "in='$d/superposition/superposition.csv'; out='$d/superposition/superposition.png'" scripts/plot_superposition.gp
    gnuplot -e "dir='$d/task-vectors'" scripts/plot_task_vectors.gp
    gnuplot -e "dir='$d/task-vectors-add'" scripts/plot_task_vectors.gp
    gnuplot -e "in='$d/decodability/td_steps.csv'; out='$d/decodability/td_steps.png'; plot='steps'" scripts/plot_decodability.gp
    gnuplot -e "in='$d/logit-lens/logit_lens.csv'; out='$d/logit-lens/logit_lens.png'" scripts/plot_lens.gp
    gnuplot -e "in='$d/rsa/rsa.csv'; out='$d/rsa/rsa.png'" scripts/plot_rsa.gp
    gnuplot -e "in='$d/attention/attention.csv'; out='$d/attention/attention.png'; plot='roles'" scripts/plot_attention.gp
done
for d in "$OUT"/han/*_s*/ "$OUT"/garg/*_s*/ "$OUT"/garglong/*_s*/; do
    d=${d%/}
    gnuplot -e "dir='$d/model'" scripts/plot_training.gp
done
for d in "$OUT"/han/*_s*/; do
    d=${d%/}
    gnuplot -e "in='$d/decodability/td_steps.csv'; out='$d/decodability/td_steps.png'; plot='steps'" scripts/plot_decodability.gp
    gnuplot -e "dir='$d/task-vectors'" scripts/plot_task_vectors.gp
    gnuplot -e "in='$d/finetune/finetune.csv'; out='$d/finetune/finetune.png'" scripts/plot_finetune.gp
done 2>/dev/null
for d in "$OUT"/tv/*_s*/; do
    d=${d%/}
    gnuplot -e "dir='$d/task-vectors'" scripts/plot_task_vectors.gp
    gnuplot -e "dir='$d/task-vectors-add'" scripts/plot_task_vectors.gp
done 2>/dev/null
# The claims' statistics (correlations with their p-values) and figures, docs/results.md "Claims"
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT/figures"
if [ -d "$OUT/scale" ]; then
    for g in $(ls -d "$OUT"/scale/*_s*/ | sed 's|/$||; s|.*/||; s|_s[0-9]*$||' | sort -u); do
        $PY scripts/claims_stats.py ksweep "$OUT/scale" "$g" > "$OUT/scale/claims_ksweep_$g.txt"
    done
    $PY scripts/claims_stats.py scale "$OUT/scale" > "$OUT/scale/claims_scale.txt"
    c=$OUT/scale/claims
    gnuplot -e "plot='ksweep'; in='$c/retrieval_L3_d64_ksweep.csv'; points='$c/retrieval_L3_d64_ksweep_points.csv'; out='$OUT/figures/claims_yousefi_k.png'" scripts/plot_claims.gp
    gnuplot -e "plot='scale'; in='$c/scale_points.csv'; out='$OUT/figures/claims_xiong_scale.png'" scripts/plot_claims.gp
fi
if [ -d "$OUT/han_td" ]; then
    $PY scripts/claims_stats.py han "$OUT/han_td" > "$OUT/han_td/claims_han.txt"
    gnuplot -e "plot='han'; in='$OUT/han_td/claims/td_error_points.csv'; out='$OUT/figures/claims_han_td_error.png'" scripts/plot_claims.gp
fi
[ -d "$OUT/tv" ] && $PY scripts/claims_stats.py tv "$OUT/tv" > "$OUT/tv/claims_tv.txt"
if [ -d "$OUT/hanlong" ]; then
    $PY scripts/claims_stats.py hanlong "$OUT/hanlong" > "$OUT/hanlong/claims_hanlong.txt"
    n=$(ls -d "$OUT"/hanlong/s*/ | wc -l)
    gnuplot -e "plot='han'; in='$OUT/hanlong/claims/td_error_points.csv'; out='$OUT/figures/claims_han8l_td_error.png'; logy=1; title='basis_mixture_small 8x64, 150000 steps: TD vs query error, checkpoints every 5000 steps'" scripts/plot_claims.gp
    gnuplot -e "plot='finetune'; in='$OUT/hanlong/claims/finetune_heldout_points.csv'; out='$OUT/figures/claims_han8l_finetune.png'; seeds='$n seeds'" scripts/plot_claims.gp
fi
t=$OUT/garglong/summary/linear_toy_L4_d64/model.eval.csv
if [ -f "$t" ]; then
    n=$(ls -d "$OUT"/garglong/*_s*/ | wc -l)
    gnuplot -e "plot='garg'; in='$t'; out='$OUT/figures/claims_garg30k.png'; seeds='$n seeds'" scripts/plot_claims.gp
fi
# The figures docs/results.md shows (seed 1): cp "$OUT"/figures/*.png docs/figures/
mkdir -p "$OUT/figures"
first=${SEEDS%% *}
while read -r src dst; do
    [ -e "$OUT/$src" ] && cp "$OUT/$src" "$OUT/figures/$dst"
done <<FIGURES
xiong/${XIONG_TASK}_L3_d64_s$first/superposition/superposition.png xiong_superposition.png
xiong/${XIONG_TASK}_L3_d64_s$first/superposition/superposition_tasks.png xiong_superposition_tasks.png
xiong/${XIONG_TASK}_L3_d64_s$first/task-vectors/interpolation.png xiong_interpolation.png
xiong/${XIONG_TASK}_L3_d64_s$first/logit-lens/logit_lens.png xiong_logit_lens.png
xiong/${XIONG_TASK}_L3_d64_s$first/decodability/td_steps.png xiong_decodability_steps.png
xiong/${XIONG_TASK}_L3_d64_s$first/rsa/rsa.png yousefi_rsa.png
xiong/${XIONG_TASK}_L3_d64_s$first/attention/attention.png yousefi_attention.png
han/${HAN_TASK}_L3_d64_s$first/model/task_curves.png han_per_basis.png
han/${HAN_TASK}_L3_d64_s$first/model/eval_by_examples.png han_error_by_k.png
han/${HAN_TASK}_L3_d64_s$first/decodability/td_steps.png han_decodability_steps.png
han/${HAN_TASK}_L3_d64_s$first/finetune/finetune.png han_finetune.png
garg/linear_toy_L4_d64_s1/model/eval_by_examples.png garg_error_by_k.png
tv/translation_K_4_L2_d64_s$first/task-vectors-add/interpolation.png claims_tv_interpolation_add.png
tv/translation_K_4_L2_d64_s$first/task-vectors/interpolation.png claims_tv_interpolation_replace.png
FIGURES
echo "done" >> "$OUT/commands.log"
