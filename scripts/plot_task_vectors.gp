# Figures of `icl probe task-vectors`:
#   gnuplot -e "dir='out/probe-task-vectors'" scripts/plot_task_vectors.gp
# writes into dir:
#   zero_shot.png      accuracy and P(answer) of zero-shot prompts against the patched level (Hendel),
#                      dashed: without a vector (token families)
#   matrix.png         vector task x prompt task change at the best level: accuracy and P of the
#                      vector task's answer (token), or query MSE (vector families; Han's Fig. 7)
#   interpolation.png  P(answer_1), P(answer_2) and other against alpha for alpha v_1 + (1-alpha) v_2
#                      (token families)
if (!exists("dir")) dir = "out/probe-task-vectors"
set datafile separator ","
set terminal pngcairo size 1100,480 font ",10" noenhanced
set key outside right
set grid

zs = dir."/zero_shot.csv"
mx = dir."/matrix.csv"
ip = dir."/interpolation.csv"
best = system("awk -F: '/\"best_level\"/ {gsub(/[ ,\\t]/, \"\", $2); print $2}' ".dir."/task_vectors.json")
token = system("test -f ".zs." && echo 1 || echo 0") + 0

# Rows of csv whose column `col` equals `val` (and column 3 of zero_shot.csv the metric).
sel(file, cond) = sprintf("< awk -F, 'NR > 1 && (%s)' %s", cond, file)

if (token) {
    tasks = system("awk -F, 'NR > 1 && !seen[$1]++ {printf \"%s \", $1}' ".zs)
    set output dir."/zero_shot.png"
    set multiplot layout 1,2 title "zero-shot prompts with the task's own vector (dashed: no vector)"
    set xlabel "level patched (0 = embedding, l+1 = after block l)"
    set xtics 1
    set yrange [0:1]
    set ylabel "accuracy"
    plot for [i = 1:words(tasks)] sel(zs, sprintf("$1 == \"%s\" && $3 == \"accuracy\"", word(tasks, i))) \
             using 2:4 with linespoints lc i lw 2 title word(tasks, i), \
         for [i = 1:words(tasks)] sel(zs, sprintf("$1 == \"%s\" && $3 == \"accuracy_base\"", word(tasks, i))) \
             using 2:4 with lines lc i dt 2 notitle
    set ylabel "P(answer)"
    plot for [i = 1:words(tasks)] sel(zs, sprintf("$1 == \"%s\" && $3 == \"p\"", word(tasks, i))) \
             using 2:4 with linespoints lc i lw 2 title word(tasks, i), \
         for [i = 1:words(tasks)] sel(zs, sprintf("$1 == \"%s\" && $3 == \"p_base\"", word(tasks, i))) \
             using 2:4 with lines lc i dt 2 notitle
    unset multiplot
    unset yrange
}

# Heatmap of one metric at the best level: x = prompt task, y = vector task.
names = system("awk -F, 'NR > 1 && !seen[$3]++ {printf \"%s \", $3}' ".mx)
n = words(names)
if (!token) set terminal pngcairo size 720,560 font ",10" noenhanced
set output dir."/matrix.png"
set xrange [-0.5:n - 0.5]
set yrange [n - 0.5:-0.5]
set xtics () rotate by 30 right
set ytics ()
do for [i = 1:n] {
    set xtics add (word(names, i) i - 1)
    set ytics add (word(names, i) i - 1)
}
set xlabel "prompt task (patched prompts)"
set ylabel "vector task (patched vector)"
set palette defined (-1 "#2166ac", 0 "white", 1 "#b2182b")
set key off
heat(metric) = sel(mx, sprintf("$1 == %s && $6 == \"%s\"", best, metric))
if (token) {
    set multiplot layout 1,2 title sprintf("vector task x prompt task at level %s (change from unpatched)", best)
    set cbrange [-1:1]
    set title "d accuracy of the vector task's answer"
    plot heat("daccuracy_vector_answer") using 5:4:7 with image, \
         heat("daccuracy_vector_answer") using 5:4:(sprintf("%.2f", $7)) with labels
    set title "d P(answer of the vector task)"
    plot heat("dp_vector_answer") using 5:4:7 with image, \
         heat("dp_vector_answer") using 5:4:(sprintf("%.2f", $7)) with labels
    unset multiplot
} else {
    set title sprintf("d query MSE, level %s (Han: diagonal <= 0, off-diagonal > 0)", best)
    set autoscale cb
    m = system(sprintf("awk -F, 'NR > 1 && $1 == %s && $6 == \"dmse\" {v = $7 < 0 ? -$7 : $7; if (v > m) m = v} END {print m + 1e-12}' %s", best, mx)) + 0
    set cbrange [-m:m]
    plot heat("dmse") using 5:4:7 with image, heat("dmse") using 5:4:(sprintf("%.3f", $7)) with labels
}
unset title
set autoscale
set xtics autofreq norotate
set ytics autofreq
set yrange [*:*] noreverse

if (token) {
    pairs = system("awk -F, 'NR > 1 && !seen[$2 \"/\" $3]++ {printf \"%s/%s \", $2, $3}' ".ip)
    np = words(pairs)
    if (np > 0) {
        cols = np < 3 ? np : 3
        rows = (np + cols - 1) / cols
        set terminal pngcairo size 380 * cols, 340 * rows font ",9" noenhanced
        set output dir."/interpolation.png"
        set multiplot layout rows, cols title "alpha v_1 + (1 - alpha) v_2 patched into zero-shot prompts (x: alpha)"
        unset xlabel
        set ylabel "probability"
        set xrange [0:1]
        set yrange [0:1]
        set key below horizontal
        do for [i = 1:np] {
            pr = word(pairs, i)
            t1 = pr[1:strstrt(pr, "/") - 1]
            t2 = pr[strstrt(pr, "/") + 1:]
            c = sprintf("$2 == \"%s\" && $3 == \"%s\" && $5 == \"%%s\"", t1, t2)
            set title pr
            plot sel(ip, sprintf(c, "p_task_1")) using 4:6 with linespoints lw 2 title "P(".t1.")", \
                 sel(ip, sprintf(c, "p_task_2")) using 4:6 with linespoints lw 2 title "P(".t2.")", \
                 sel(ip, sprintf(c, "other")) using 4:6 with linespoints lw 2 dt 2 title "other"
        }
        unset multiplot
    }
}
