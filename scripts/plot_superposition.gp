# Figures of `icl probe superposition`:
#   gnuplot -e "in='DIR/superposition.csv'; out='DIR/superposition.png'" scripts/plot_superposition.gp
# writes
#   out              P(answer of task j) against its proportion lambda_j with the diagonal (Xiong et al.'s
#                    from-scratch figure); the 2-task sweep, else whatever mixtures the CSV holds
#   <out>_tasks.png  tasks solved r and KL(lambda || p) against the number of tasks of uniform mixtures
#   <out>_lens.png   (with --lens) the first figure once per level of the logit lens
if (!exists("in")) in = "out/probe-superposition/superposition.csv"
if (!exists("out")) out = in[1:strlen(in) - 4].".png"
base = out[1:strlen(out) - 4]
set datafile separator ","
set terminal pngcairo size 760,560 font ",10" noenhanced
set grid
set key top left

# Columns: 1 sweep, 2 mixture, 3 n_tasks, 4 tasks, 5 readout, 6 level, 7 task, 8 lambda, 9 lambda_actual,
# 10 count, 11 p_mean, 12 p_sd, 13 sorted_mean, 14 solved, 15 other, 16 kl_raw, 17 kl_renorm, 18 r, 19 pk_exact.
sel(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
count(cond) = system(sprintf("awk -F, 'NR > 1 && (%s)' '%s' | wc -l", cond, in)) + 0

sweep = count("$1 == \"pairs\"") > 0 ? "pairs" : "uniform"
if (count("$1 == \"".sweep."\"") == 0) sweep = "custom"
tasks = system(sprintf("awk -F, 'NR > 1 && $1 == \"%s\" && !seen[$7]++ {printf \"%%s \", $7}' '%s'", sweep, in))

# P_j against lambda_j of one readout (condition on columns 5 and 6).
set xrange [-0.05:1.05]
set yrange [0:1]
set xlabel "lambda_j (fraction of the examples that are task j)"
set ylabel "P(answer of task j)"
set output out
set title sprintf("model output, %s mixtures: mean over prompts, bars = sd", sweep)
plot x with lines dt 2 lc "gray40" title "P = lambda", \
     for [i = 1:words(tasks)] sel(sprintf("$1 == \"%s\" && $5 == \"output\" && $7 == \"%s\"", sweep, word(tasks, i))) \
         using ($9 + (i - (words(tasks) + 1) / 2.0) * 0.006):11:12 with yerrorbars pt 7 ps 0.8 lc i title word(tasks, i)

# r and KL against the number of tasks, averaged over the task subsets of each size.
if (count("$1 == \"uniform\" && $5 == \"output\"") > 0) {
    agg = sprintf("< awk -F, 'NR > 1 && $1 == \"uniform\" && $5 == \"output\" && !seen[$2]++ {n[$3]++; r[$3] += $18; kr[$3] += $16; kn[$3] += $17} END {for (k in n) print k \",\" r[k] / n[k] \",\" kr[k] / n[k] \",\" kn[k] / n[k]}' '%s' | sort -n", in)
    set output base."_tasks.png"
    set terminal pngcairo size 1100,460 font ",10" noenhanced
    set multiplot layout 1,2 title "uniform mixtures (mean over task subsets of each size)"
    unset title
    set autoscale
    set xlabel "tasks in the prompt K"
    set xtics 1
    set ylabel "tasks solved r"
    set yrange [0:*]
    plot x with lines dt 2 lc "gray40" title "r = K", agg using 1:2 with linespoints pt 7 lw 2 title "r"
    set ylabel "KL(lambda || p)"
    plot agg using 1:3 with linespoints pt 7 lw 2 title "raw p", agg using 1:4 with linespoints pt 5 lw 2 title "renormalised p"
    unset multiplot
    set xtics autofreq
}

# Per level of the logit lens.
levels = system(sprintf("awk -F, 'NR > 1 && $5 == \"lens\" && !seen[$6]++ {printf \"%%s \", $6}' '%s'", in))
if (words(levels) > 0) {
    cols = words(levels) < 4 ? words(levels) : 4
    rows = (words(levels) + cols - 1) / cols
    set terminal pngcairo size 420 * cols, 380 * rows font ",9" noenhanced
    set output base."_lens.png"
    set multiplot layout rows, cols title sprintf("logit lens, %s mixtures: P(answer of task j) against lambda_j", sweep)
    set xrange [-0.05:1.05]
    set yrange [0:1]
    set xlabel "lambda_j"
    set ylabel "P(answer of task j)"
    do for [l = 1:words(levels)] {
        lv = word(levels, l)
        set title (lv == "0" ? "level 0 (embedding)" : sprintf("level %s (after block %d)", lv, lv - 1))
        plot x with lines dt 2 lc "gray40" notitle, \
             for [i = 1:words(tasks)] sel(sprintf("$1 == \"%s\" && $5 == \"lens\" && $6 == %s && $7 == \"%s\"", sweep, lv, word(tasks, i))) \
                 using 9:11 with points pt 7 ps 0.7 lc i title (l == 1 ? word(tasks, i) : "")
    }
    unset multiplot
}
