# Figures of `icl probe logit-lens` and `icl probe head-ablation`, told apart by the CSV's header:
#   gnuplot -e "in='DIR/logit_lens.csv'; out='DIR/logit_lens.png'" scripts/plot_lens.gp
#     P(answer of each task) against the level read through the lens, one panel per prompt set
#     (single-task prompts of each task, and their uniform mixture); the sd over prompts is in the CSV
#   gnuplot -e "in='DIR/head_ablation.csv'; out='DIR/head_ablation.png'" scripts/plot_lens.gp
#     out: heatmaps of the change of P(answer) per layer (y) and head (x); rows: ablation mode,
#     columns: task; <out>_acc.png: the same for the change of accuracy. Vector families: out
#     shows the change of the query squared error
if (!exists("in")) in = "out/probe-logit-lens/logit_lens.csv"
if (!exists("out")) out = in[1:strlen(in) - 4].".png"
base = out[1:strlen(out) - 4]
set datafile separator ","
set grid
sel(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
uniq(col, cond) = system(sprintf("awk -F, 'NR > 1 && (%s) && !seen[$%d]++ {printf \"%%s \", $%d}' '%s'", cond, col, col, in))
header = system(sprintf("head -1 '%s' | cut -d, -f1", in))

if (header eq "prompts") {
    # Columns: 1 prompts, 2 prompt_tasks, 3 level, 4 point, 5 task, 6 lambda, 7 p_mean, 8 p_sd.
    sets = uniq(2, "1")
    tasks = uniq(5, "1")
    n = words(sets)
    cols = n < 3 ? n : 3
    rows = (n + cols - 1) / cols
    set terminal pngcairo size 440 * cols, 380 * rows font ",9" noenhanced
    set output out
    set multiplot layout rows, cols title "logit lens: P(answer of each task) read out of every level"
    set xlabel "level (0 = embedding, l+1 = after block l)"
    set ylabel "P(answer)"
    set xtics 1
    set yrange [0:1]
    set key top left
    do for [s = 1:n] {
        set title sprintf("prompts: %s", word(sets, s))
        plot for [i = 1:words(tasks)] sel(sprintf("$2 == \"%s\" && $5 == \"%s\"", word(sets, s), word(tasks, i))) \
                 using 3:7 with linespoints pt 7 ps 0.8 lw 2 lc i title word(tasks, i)
    }
    unset multiplot
} else {
    # Columns: 1 layer, 2 head, 3 mode, 4 task, 5-7 p base/ablated/delta, 8-10 accuracy, 11-13 query squared
    # error (vector families); a metric the family does not have is "nan".
    modes = uniq(3, "1")
    tasks = uniq(4, "1")
    token = system(sprintf("awk -F, 'NR == 2 {print ($7 == \"nan\" ? 0 : 1)}' '%s'", in)) + 0
    nl = system(sprintf("awk -F, 'NR > 1 && $1 > m {m = $1} END {print m + 1}' '%s'", in)) + 0
    nh = system(sprintf("awk -F, 'NR > 1 && $2 > m {m = $2} END {print m + 1}' '%s'", in)) + 0
    set palette defined (-1 "#2166ac", 0 "white", 1 "#b2182b")
    set xrange [-0.5:nh - 0.5]
    set yrange [nl - 0.5:-0.5]
    set xtics 1
    set ytics 1
    set xlabel "head"
    set ylabel "layer"
    unset grid
    do for [k = 1:(token ? 2 : 1)] {
        col = token ? (k == 1 ? 7 : 10) : 13
        what = token ? (k == 1 ? "P(answer)" : "accuracy") : "the query squared error"
        big = system(sprintf("awk -F, 'NR > 1 && $%d != \"nan\" {v = $%d < 0 ? -$%d : $%d; if (v > m) m = v} END {print (m > 0 ? m : 1)}' '%s'", col, col, col, col, in)) + 0
        set cbrange [-big:big]
        set terminal pngcairo size 300 * words(tasks) + 120, 280 * words(modes) + 60 font ",9" noenhanced
        set output (k == 1 ? out : base."_acc.png")
        set multiplot layout words(modes), words(tasks) title sprintf("change of %s when one head is ablated", what)
        do for [m = 1:words(modes)] {
            do for [t = 1:words(tasks)] {
                set title sprintf("%s ablation, task %s", word(modes, m), word(tasks, t))
                plot sel(sprintf("$3 == \"%s\" && $4 == \"%s\"", word(modes, m), word(tasks, t))) \
                         using 2:1:(0.5):(0.5):col with boxxyerror fs solid 1.0 noborder fc palette notitle, \
                     "" using 2:1:(sprintf(token ? "%+.2f" : "%+.1e", column(col))) with labels font ",7" notitle
            }
        }
        unset multiplot
    }
}
