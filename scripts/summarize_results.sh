#!/bin/bash
# Summarise scripts/reproduce.sh's output over seeds (mean ± sd across seeds):
#   bash scripts/summarize_results.sh [OUT=out/results]
# Prints the tables quoted in docs/results.md. Runs live in OUT/<paper>/<task>_L<layers>_d<width>_s<seed>/
# (scripts/reproduce.sh's sweeps); `icl sweep summarize OUT/<paper>` gives mean ± sd of every CSV file
# over the seeds, written to OUT/<paper>/summary/, and is run here first for each paper.
set -uo pipefail
OUT=${1:-${OUT:-out/results}}
ICL=${ICL:-build/bin/icl}
for paper in xiong han garg; do
    [ -d "$OUT/$paper" ] && "$ICL" sweep summarize "$OUT/$paper" >&2
done

# mean ± sd over the values of one key, from "key value" lines
msd() { awk '{s[$1]+=$2; q[$1]+=$2*$2; n[$1]++} END {for (k in s) {m=s[k]/n[k]; v=q[k]/n[k]-m*m; if (v<0) v=0;
        printf "%s %.3f ± %.3f (n=%d)\n", k, m, sqrt(v), n[k]}}' | sort -t" " -k1,1g -k1,1V; }

echo "## Xiong: query accuracy against the number of examples k (mean over tasks)"
for f in "$OUT"/xiong/*_s*/model/eval.csv; do
    awk -F, 'NR>1 && $3=="model" && $4=="accuracy" {s[$2]+=$5; n[$2]++} END {for (k in s) print "k="k, s[k]/n[k]}' "$f"
done | msd

echo; echo "## Xiong: P(answer of task j) against its proportion lambda_j (2-task sweeps, all pairs and tasks)"
for f in "$OUT"/xiong/*_s*/superposition/superposition.csv; do
    # per seed: mean P over every pair and task at each lambda
    awk -F, 'NR>1 && $1=="pairs" {s[$9]+=$11; n[$9]++} END {for (l in s) print l, s[l]/n[l]}' "$f"
done | msd | sed 's/^/lambda /'

echo; echo "## Xiong: uniform mixtures of n tasks: tasks solved r, KL raw, KL renormalised, other mass"
for f in "$OUT"/xiong/*_s*/superposition/superposition.csv; do
    awk -F, 'NR>1 && $1=="uniform" && !seen[$2]++ {r[$3]+=$18; kl[$3]+=$16; klr[$3]+=$17; o[$3]+=$15; n[$3]++}
        END {for (k in r) print k, r[k]/n[k], kl[k]/n[k], klr[k]/n[k], o[k]/n[k]}' "$f"
done > /tmp/uniform.$$
for col in 2 3 4 5; do
    name=$(echo "r kl_raw kl_renorm other" | cut -d' ' -f$((col - 1)))
    awk -v c="$col" '{print $1, $c}' /tmp/uniform.$$ | msd | sed "s/^/$name n_tasks=/"
done
rm -f /tmp/uniform.$$

echo; echo "## Xiong: task-vector interpolation at the best level (mean over pairs): P(task_1), P(task_2) against alpha"
for f in "$OUT"/xiong/*_s*/task-vectors/interpolation.csv; do
    awk -F, 'NR>1 && ($5=="p_task_1" || $5=="p_task_2") {s[$4" "$5]+=$6; n[$4" "$5]++} END {for (k in s) print k, s[k]/n[k]}' "$f" |
        awk '{print $1"/"$2, $3}'
done | msd | sed 's/^/alpha\/metric /'

# The task-vector probe's two modes live in task-vectors (REPLACE) and task-vectors-add (ADD).
tv_mode() { [ "$1" = task-vectors ] && echo REPLACE || echo ADD; }

for tv in task-vectors task-vectors-add; do
    echo; echo "## Xiong: zero-shot accuracy without / with the task vector ($(tv_mode $tv) at the best level), mean over tasks"
    for f in "$OUT"/xiong/*_s*/"$tv.log"; do
        grep -E '^  [A-Za-z_0-9]+ +[0-9.]+ -> ' "$f" | awk '{a+=$2; b+=$4; n++} END {print "without", a/n; print "with", b/n}'
    done | msd
done

echo; echo "## Xiong: task decodability (mean over tasks) per layer, final model"
for f in "$OUT"/xiong/*_s*/decodability/td.csv; do
    awk -F, 'NR>1 && $2=="mean" {print "layer="$1, $5}' "$f"
done | msd

echo; echo "## Yousefi: RSA alignment with the 'same task' and 'same answer' hypotheses (Spearman rho) per layer, 0-shot vs k-shot"
for f in "$OUT"/xiong/*_s*/rsa/rsa.csv; do
    head -1 "$f" | grep -q . && awk -F, 'NR==1 {for (i=1;i<=NF;i++) h[$i]=i; next}
        {print $h["hypothesis"]"/shots="$h["shots"]"/layer="$h["layer"], $h["rho"]}' "$f"
done | msd

echo; echo "## Yousefi: query-row attention shares (mean over heads) and task ratio on mixed prompts"
for f in "$OUT"/xiong/*_s*/attention/attention.csv; do
    awk -F, 'NR==1 {for (i=1;i<=NF;i++) h[$i]=i; next}
        $h["head"]==-1 && ($h["kind"]=="ratio" || $h["name"] ~ /^(ex_input|ex_answer|query_input)$/) &&
        $h["value"]!="nan" {print $h["condition"]"/layer="$h["layer"]"/"$h["name"], $h["value"]}' "$f"
done | msd

echo; echo "## Han: query squared error of the basis-mixture model and baselines against k (mean over bases)"
for f in "$OUT"/han/*_s*/model/eval.csv; do
    awk -F, 'NR>1 && $4!="query_loss" {s[$3" k="$2]+=$5; n[$3" k="$2]++} END {for (k in s) print k, s[k]/n[k]}' "$f" |
        awk '{print $1"/"$2, $3}'
done | msd

echo; echo "## Han: task decodability (mean over bases) per layer at the end of training"
for f in "$OUT"/han/*_s*/decodability/td.csv; do
    awk -F, 'NR>1 && $2=="mean" {print "layer="$1, $5}' "$f"
done | msd

for tv in task-vectors task-vectors-add; do
    echo; echo "## Han: patching matrix (vector basis x prompt basis, $(tv_mode $tv)) change of query MSE per level: diagonal vs off-diagonal"
    for f in "$OUT"/han/*_s*/"$tv"/matrix.csv; do
        awk -F, 'NR==1 {for (i=1;i<=NF;i++) h[$i]=i; next}
            $h["metric"]=="dmse" {l=$h["level"]; if ($h["vector_task"]==$h["prompt_task"]) {d[l]+=$h["value"]; nd[l]++}
                                  else {o[l]+=$h["value"]; no[l]++}}
            END {for (l in d) {print "level="l"/diagonal", d[l]/nd[l]; print "level="l"/off_diagonal", o[l]/no[l]}}' "$f"
    done | msd
done

echo; echo "## Han: first-n vs last-n finetuning"
for f in "$OUT"/han/*_s*/finetune/finetune.csv; do
    awk -F, 'NR==1 {for (i=1;i<=NF;i++) h[$i]=i; next}
        $h["task"]=="mean" && $h["value"]!="nan" {print $h["variant"]"/"$h["metric"], $h["value"]}' "$f"
done | msd

echo; echo "## Garg: linear_toy query squared error against k (model and baselines)"
for f in "$OUT"/garg/*_s*/model/eval.csv; do
    awk -F, 'NR>1 && $4!="query_loss" {s[$3" k="$2]+=$5; n[$3" k="$2]++} END {for (k in s) print k, s[k]/n[k]}' "$f" |
        awk '{print $1"/"$2, $3}'
done | msd
