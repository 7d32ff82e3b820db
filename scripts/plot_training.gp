# Training curves of `icl train --out DIR`:
#   gnuplot -e "dir='DIR'" scripts/plot_training.gp
# writes DIR/loss.png (training loss), DIR/task_curves.png (per-task loss and
# metric over steps, from task_log.csv) and DIR/eval_by_examples.png (metric
# against the number of in-context examples, from eval.csv).
if (!exists("dir")) dir = "."
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set datafile separator ","
set key outside right
set grid

set output dir."/loss.png"
set title "training loss"
set xlabel "step"
set ylabel "loss"
set logscale y
plot dir."/train_log.csv" using 1:2 skip 1 with lines lw 2 title "loss"
unset logscale y

# task_log.csv: step,task,loss,metric — one curve per task name
tasks = system("awk -F, 'NR>1 && !s[$2]++ {printf \"%s \", $2}' ".dir."/task_log.csv 2>/dev/null")
if (strlen(tasks) > 0) {
    set output dir."/task_curves.png"
    set multiplot layout 1,2 title "per-task curves on fixed evaluation prompts"
    set title "loss"
    set xlabel "step"
    set ylabel "loss"
    set logscale y
    plot for [t in tasks] "< awk -F, '$2==\"".t."\"' ".dir."/task_log.csv" using 1:3 with linespoints title t
    unset logscale y
    set title "query metric (accuracy or squared error)"
    set ylabel "metric"
    plot for [t in tasks] "< awk -F, '$2==\"".t."\"' ".dir."/task_log.csv" using 1:4 with linespoints title t
    unset multiplot
}

# eval.csv: task,k,method,metric,value
methods = system("awk -F, 'NR>1 && $4!=\"query_loss\" && !s[$3]++ {printf \"%s \", $3}' ".dir."/eval.csv 2>/dev/null")
if (strlen(methods) > 0) {
    set output dir."/eval_by_examples.png"
    set title "query metric against the number of in-context examples (mean over tasks)"
    set xlabel "in-context examples k"
    set ylabel "accuracy (token tasks) / squared error (vector tasks)"
    plot for [mm in methods] "< awk -F, 'NR>1 && $3==\"".mm."\" && $4!=\"query_loss\" {s[$2]+=$5; n[$2]++} END {for (k in s) print k\",\"s[k]/n[k]}' ".dir."/eval.csv | sort -t, -n -k1" using 1:2 with linespoints lw 2 title mm
}
