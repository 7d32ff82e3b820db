# Figures of docs/results.md's "Claims" experiments, from the CSV files scripts/claims_stats.py writes:
#   gnuplot -e "plot='ksweep'; in='OUT/scale/claims/retrieval_L3_d64_ksweep.csv'; points='OUT/scale/claims/retrieval_L3_d64_ksweep_points.csv'; out='k.png'" scripts/plot_claims.gp
#   gnuplot -e "plot='han'; in='OUT/han_td/claims/td_error_points.csv'; out='han.png'" scripts/plot_claims.gp
#     (optional: title='...'; logy=1 for a logarithmic error axis)
#   gnuplot -e "plot='scale'; in='OUT/scale/claims/scale_points.csv'; out='scale.png'" scripts/plot_claims.gp
#   gnuplot -e "plot='finetune'; in='out/han8l150/claims/finetune_heldout_points.csv'; out='ft.png'" scripts/plot_claims.gp
#   gnuplot -e "plot='garg'; in='OUT/garglong/summary/linear_toy_L4_d64/model.eval.csv'; out='garg.png'" scripts/plot_claims.gp
# ksweep: accuracy, RSA alignment and attention ratio against k (mean ± sd over seeds), and the
# behavioural gain against each representational change (one point per seed, task and k);
# han: TD against query error, one colour per seed (Han's Fig. 4); scale: tasks solved r and
# KL(lambda||p) of uniform 2-, 3-, 4-task mixtures against the parameter count (mean ± sd);
# finetune: the 8-layer model finetuned on held-out bases, original / first 4 / last 4 blocks: query
# error on the seen and the held-out bases and TD among the held-out ones (mean ± sd over seeds);
# garg: query squared error against k, the model (mean ± sd over seeds) and the baselines, from
# `icl sweep summarize`'s table (task,k,k_sd,method,metric,value,value_sd).
if (!exists("plot") || !exists("in") || !exists("out")) { print "set plot, in and out"; exit }
set datafile separator ','
set datafile missing 'nan'
set terminal pngcairo size 1200,420 font ',11' noenhanced
set output out
set grid
set key top left

if (plot eq 'ksweep') {
    set terminal pngcairo size 1500,400 font ',10' noenhanced
    set output out
    set multiplot layout 1,5 title 'Retrieval 3x64: behaviour and representation against the number of examples k (mean ± sd over seeds)'
    set xlabel 'k'
    set xrange [-0.5:8.5]
    unset key
    set title 'query accuracy'
    set yrange [0:1.05]
    plot in every ::1 using 1:2:3 with yerrorlines lw 2 pt 7 lc rgb '#238b45'
    set title 'RSA rho, "same answer", last level'
    set yrange [*:*]
    plot in every ::1 using 1:4:5 with yerrorlines lw 2 pt 7 lc rgb '#2171b5'
    set title 'query-source attention ratio, last layer'
    plot in every ::1 using 1:6:7 with yerrorlines lw 2 pt 7 lc rgb '#cb181d'
    set xrange [*:*]
    set yrange [*:*]
    set ylabel 'accuracy gain over 0 shots'
    set title 'gain vs change of RSA rho (k >= 1)'
    set xlabel 'change of rho from 0 shots'
    plot points every ::1 using 5:4 with points pt 7 ps 0.6 lc rgb '#2171b5'
    set title 'gain vs change of the ratio (k >= 1)'
    set xlabel 'change of the ratio from 0 shots'
    plot points every ::1 using 6:4 with points pt 7 ps 0.6 lc rgb '#cb181d'
    unset multiplot
}

if (plot eq 'han') {
    set terminal pngcairo size 700,520 font ',11' noenhanced
    set output out
    if (!exists("title")) { title = 'basis_mixture_small 3x64, 8000 steps: TD vs query error' }
    set title title
    set xlabel 'task decodability (chance 0.25)'
    set ylabel 'query squared error'
    if (exists("logy")) { set logscale y }
    set key top right
    plot for [s = 1:3] sprintf("< awk -F, 'NR > 1 && $1 == %d' '%s'", s, in) using 4:5 with points pt 7 ps 0.8 \
         title sprintf('seed %d', s)
}

if (plot eq 'scale') {
    set multiplot layout 1,2 title 'Retrieval 1x32, 2x48 (both without ICL), 3x64, 4x80: uniform mixtures of n tasks (mean ± sd over seeds)'
    set xrange [30000:1.5e6]
    set logscale x
    set xlabel 'parameters'
    set key top left
    set title 'tasks solved r (of n)'
    set yrange [0:4.2]
    plot in every ::1 using 4:8:9 with yerrorlines lw 2 pt 7 title 'n = 2', \
         in every ::1 using 4:12:13 with yerrorlines lw 2 pt 7 title 'n = 3', \
         in every ::1 using 4:16:17 with yerrorlines lw 2 pt 7 title 'n = 4'
    set title 'KL(lambda || p) per prompt (nats)'
    set yrange [0:*]
    plot in every ::1 using 4:10:11 with yerrorlines lw 2 pt 7 title 'n = 2', \
         in every ::1 using 4:14:15 with yerrorlines lw 2 pt 7 title 'n = 3', \
         in every ::1 using 4:18:19 with yerrorlines lw 2 pt 7 title 'n = 4'
    unset multiplot
}

if (plot eq 'finetune') {
    if (!exists("seeds")) { seeds = 'seeds' }
    set multiplot layout 1,2 title 'basis_mixture_small 8x64, 150000 steps, finetuned 1000 steps on 4 held-out bases (mean ± sd over '.seeds.')'
    set style data histogram
    set style histogram errorbars gap 1 lw 1.5
    set style fill solid 0.7 border -1
    set boxwidth 0.9
    set key top right
    set xtics ('original' 0, 'first 4 blocks' 1, 'last 4 blocks' 2)
    set title 'query squared error (k = 12)'
    set yrange [0:*]
    plot in every ::1 using 3:4 title 'seen bases' lc rgb '#2171b5', \
         in every ::1 using 5:6 title 'held-out bases' lc rgb '#cb181d'
    set title 'TD among the held-out bases (best level)'
    set yrange [0:1]
    plot in every ::1 using 7:8 title 'TD' lc rgb '#238b45'
    unset multiplot
}

if (plot eq 'garg') {
    set terminal pngcairo size 700,520 font ',11' noenhanced
    set output out
    if (!exists("seeds")) { seeds = 'seeds' }
    set title 'linear_toy (d = 5) 4x64, 30000 steps: query error (mean ± sd over '.seeds.')'
    set xlabel 'in-context examples k'
    set ylabel 'query squared error (Var y = 5)'
    set logscale y
    set yrange [1e-3:*]
    set key top right
    rows(m) = sprintf("< awk -F, '$4 == \"%s\" && $5 == \"mse\"' '%s'", m, in)
    plot rows('model') using 2:6:7 with yerrorlines lw 2 pt 7 lc rgb '#cb181d' title 'model', \
         rows('least_squares') using 2:($6 > 1e-6 ? $6 : 1/0) with linespoints pt 6 lc rgb '#2171b5' title 'least squares (0 from k = 5)', \
         rows('ridge') using 2:6 with linespoints pt 6 lc rgb '#238b45' title 'ridge', \
         rows('lasso') using 2:6 with linespoints pt 6 lc rgb '#6a51a3' title 'lasso'
}
