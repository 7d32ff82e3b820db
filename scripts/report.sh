#!/bin/sh
# Write the demo's report (markdown) to stdout from the files in OUT.
#   sh scripts/report.sh OUT TASK STEPS SHORT_STEPS SEED TRAIN_SECONDS TOTAL_SECONDS
set -eu
OUT=$1 TASK=$2 STEPS=$3 SHORT_STEPS=$4 SEED=$5 TRAIN_S=$6 TOTAL_S=$7

images() { # every PNG of a directory, as markdown images relative to OUT
    for png in "$OUT/$1"/*.png; do
        [ -e "$png" ] && printf '![%s](%s)\n\n' "$(basename "$png" .png)" "${png#"$OUT"/}"
    done
}

summary() { # a probe's printed summary, verbatim
    printf '```\n'
    cat "$OUT/$1/summary.txt"
    printf '```\n\n'
}

cat <<MD
# libicl demo report

A $(sed -n 's/.*\(token mode, .* parameters\).*/\1/p' "$OUT/train.log" 2>/dev/null || true) transformer trained from scratch on
single-task in-context prompts of the \`$TASK\` family (seed $SEED, $STEPS steps, the first
$SHORT_STEPS on prompts of 2 examples), then probed.
Training took ${TRAIN_S} s; the whole demo ${TOTAL_S} s. Every number below comes from the files
next to this report (CSV, NPY and a JSON sidecar per probe); docs/results.md explains the probes
and what the papers found.

## Training

Training loss, per-task loss and query accuracy on fixed evaluation prompts during training
(\`model/task_log.csv\`), and accuracy against the number of in-context examples:

$(images model)

## Accuracy against the number of in-context examples

\`icl eval\` on 100 fresh prompts per task and per number of examples k (\`model/eval.csv\`):

\`\`\`
$(cat "$OUT/eval.txt")
\`\`\`

## Superposition (Xiong et al.)

Prompts that mix tasks with proportions λ: the probability the model gives each task's answer
(\`superposition/\`).

$(summary superposition)
$(images superposition)

## Task vectors (Hendel et al.; Han et al.)

The mean residual at the query separator of demonstration prompts, patched into zero-shot and
other-task prompts (\`task-vectors/\`).

$(summary task-vectors)
$(images task-vectors)

## Task decodability (Han et al.)

Leave-one-out 10-nearest-neighbour decoding of the task from the residual stream at the query
separator, per layer, and over the training checkpoints (\`decodability/\`).

$(summary decodability)
$(images decodability)
MD
