#!/bin/bash
# Yousefi et al.'s "representation tracks behaviour", per number of in-context examples k and
# per task, on one model:
#   [TASKS="ret_1 ret_2 ret_3 ret_4"] [KMAX=8] [PROMPTS=100] bash scripts/k_sweep.sh ICL MODEL RUN SEED
# For each task: `icl probe rsa --shots 0,1,..,KMAX` (the same queries cut to k examples: accuracy
# and RSA per k) and, for k = 1..KMAX, `icl probe attention --examples k --mix 0` (its 0-shot
# condition is the same queries cut to 0 examples). Writes RUN/ksweep/<task>/... and
# RUN/ksweep/ksweep.csv with one row per (task, k):
#   task,k,accuracy,rsa_answer,attention_qs,attention_qs_0shot
# The measures were fixed before looking at any k-sweep: RSA's "answer" hypothesis at the last
# level (the output of the last block), and the query-source attention ratio of the last
# attention layer, mean over heads (head -1).
set -euo pipefail
ICL=$1 MODEL=$2 RUN=$3 SEED=$4
TASKS=${TASKS:-ret_1 ret_2 ret_3 ret_4}
KMAX=${KMAX:-8}
PROMPTS=${PROMPTS:-100}
out=$RUN/ksweep
mkdir -p "$out"
shots=$(seq -s, 0 "$KMAX")
csv=$out/ksweep.csv.tmp
echo "task,k,accuracy,rsa_answer,attention_qs,attention_qs_0shot" > "$csv"
for t in $TASKS; do
    d=$out/$t
    "$ICL" probe rsa --model "$MODEL" --tasks "$t" --shots "$shots" --prompts "$PROMPTS" --perm 200 \
        --seed "$SEED" --out "$d/rsa" > "$d.rsa.log" 2>&1
    for k in $(seq 1 "$KMAX"); do
        "$ICL" probe attention --model "$MODEL" --tasks "$t" --examples "$k" --mix 0 --prompts "$PROMPTS" \
            --seed "$SEED" --out "$d/attention_k$k" > "$d.attention_k$k.log" 2>&1
    done
    # the last level / attention layer: the largest layer number in each file
    awk -F, -v t="$t" -v kmax="$KMAX" -v dir="$d" '
        FNR == 1 { file++ }
        file == 1 && $2 == "accuracy" { acc[$1] = $3 }
        file == 2 && $3 == "answer" { if ($2 + 0 >= top) { top = $2 + 0 }; rho[$1 "," $2] = $4 }
        END {
            for (k = 0; k <= kmax; k++) {
                qs = "nan"; q0 = "nan"
                if (k > 0) {
                    f = dir "/attention_k" k "/attention.csv"; atop = -1
                    while ((getline line < f) > 0) {
                        split(line, c, ",")
                        if (c[4] == "-1" && c[5] == "ratio" && c[6] == "query_source" && c[3] + 0 >= atop) {
                            if (c[3] + 0 > atop) { atop = c[3] + 0; qs = "nan"; q0 = "nan" }
                            if (c[1] == "k-shot") qs = c[7]; else if (c[1] == "0-shot") q0 = c[7]
                        }
                    }
                    close(f)
                }
                print t "," k "," acc[k] "," rho[k "," top] "," qs "," q0
            }
        }' "$d/rsa/score.csv" "$d/rsa/rsa.csv" >> "$csv"
done
mv "$csv" "$out/ksweep.csv"
