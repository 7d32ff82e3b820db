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

# steps as 500, 1k, 2k, ...: full numbers collide on the half-width panels
set format x '%.0s%c'
set output dir."/loss.png"
set title "training loss"
set xlabel "step"
set ylabel "loss"
set logscale y
plot dir."/train_log.csv" using 1:2 skip 1 with lines lw 2 title "loss"
unset logscale y

# regression tasks report "mse", token tasks "accuracy"; eval.csv says which
metric = system("awk -F, 'NR>1 && $4!=\"query_loss\" {print $4; exit}' ".dir."/eval.csv 2>/dev/null")

# task_log.csv: step,task,loss,metric — one curve per task name
tasks = system("awk -F, 'NR>1 && !s[$2]++ {printf \"%s \", $2}' ".dir."/task_log.csv 2>/dev/null")
if (strlen(tasks) > 0) {
    # about five tics of a round step: ten 10k labels collide on a half-width panel
    last = real(system("awk -F, 'NR>1 {s=$1} END {print s+1}' ".dir."/task_log.csv"))
    raw = last / 5.0
    mag = 10**floor(log10(raw))
    tic_step = (raw/mag <= 1 ? 1 : raw/mag <= 2 ? 2 : raw/mag <= 5 ? 5 : 10) * mag
    set xtics tic_step
    set output dir."/task_curves.png"
    set multiplot layout 1,2 title "per-task curves on fixed evaluation prompts"
    set title "loss"
    set xlabel "step"
    set ylabel "loss"
    set logscale y
    plot for [t in tasks] "< awk -F, '$2==\"".t."\"' ".dir."/task_log.csv" using 1:3 with linespoints title t
    unset logscale y
    if (metric eq "mse") {
        # late differences between tasks are hundredths of the early error: log scale
        set title "query squared error"
        set ylabel "squared error (log scale)"
        set logscale y
    } else {
        # before the final evaluation has written eval.csv the metric's kind is unknown
        set title (metric eq "accuracy" ? "query accuracy" : "query metric (accuracy or squared error)")
        set ylabel (metric eq "accuracy" ? "accuracy" : "metric")
    }
    plot for [t in tasks] "< awk -F, '$2==\"".t."\"' ".dir."/task_log.csv" using 1:4 with linespoints title t
    unset logscale y
    unset multiplot
    set xtics autofreq
}

# eval.csv: task,k,method,metric,value
methods = system("awk -F, 'NR>1 && $4!=\"query_loss\" && !s[$3]++ {printf \"%s \", $3}' ".dir."/eval.csv 2>/dev/null")
if (strlen(methods) > 0) {
    set format x '%g'
    set output dir."/eval_by_examples.png"
    set title "query metric against the number of in-context examples (mean over tasks)"
    set xlabel "in-context examples k"
    # Squared errors span 0.01 (oracle) to 100s (least squares where the system is square): log scale.
    if (metric eq "mse") {
        set logscale y
        set ylabel "query squared error (log scale)"
    } else {
        set ylabel "query accuracy"
    }
    plot for [mm in methods] "< awk -F, 'NR>1 && $3==\"".mm."\" && $4!=\"query_loss\" {s[$2]+=$5; n[$2]++} END {for (k in s) print k\",\"s[k]/n[k]}' ".dir."/eval.csv | sort -t, -n -k1" using 1:2 with linespoints lw 2 title mm
}
