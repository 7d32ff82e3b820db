# Attention figures from `icl probe attention` output (needs awk).
#   gnuplot -e "in='DIR/attention.csv'; out='DIR/attention.png'" scripts/plot_attention.gp
#       relevant / irrelevant attention ratio against layer, one panel per ratio, one line per
#       condition (0-shot, k-shot, mixed) for the mean over heads, points for single heads
#   ... -e "plot='roles'; in=...; out=..."   share of attention on each role against layer (mean over
#       heads), one panel per condition
if (!exists("in") || !exists("out")) { print "set in='...csv' and out='...png'"; exit }
if (!exists("plot")) { plot = 'ratios' }
rows(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
distinct(f, cond) = system(sprintf("awk -F, 'NR > 1 && (%s) && !s[$%d]++ {printf \"%%s \", $%d}' '%s'", cond, f, f, in))
set datafile separator ','
set datafile missing 'nan'
set terminal pngcairo size 1200,450 font ',11' noenhanced
set output out
set grid
conds = distinct(1, '1')
stats rows('$3 >= 0') using 3 nooutput
set xrange [-0.2:STATS_max + 0.4]
set xtics 1
set xlabel 'layer'

if (plot eq 'ratios') {
    ratios = 'query_source example_source task'
    set multiplot layout 1,3 title 'Attention from the query position: relevant / irrelevant ratio (line: mean over heads)'
    set key top left
    set logscale y
    do for [k=1:3] {
        set title word(ratios, k)
        set ylabel 'ratio'
        plot for [c=1:words(conds)] rows(sprintf('$1 == "%s" && $5 == "ratio" && $6 == "%s" && $4 == -1', \
                 word(conds, c), word(ratios, k))) using 3:7 with linespoints lw 2 lc c title word(conds, c), \
             for [c=1:words(conds)] rows(sprintf('$1 == "%s" && $5 == "ratio" && $6 == "%s" && $4 >= 0', \
                 word(conds, c), word(ratios, k))) using ($3 + 0.05 * c):7 with points pt 1 lc c notitle
    }
    unset multiplot
}

if (plot eq 'roles') {
    roles = distinct(6, '$5 == "role"')
    set multiplot layout 1,words(conds) title 'Share of the query position''s attention per role (mean over heads)'
    set key right center font ',9'
    set yrange [0:1]
    do for [c=1:words(conds)] {
        set title word(conds, c)
        set ylabel 'share of attention'
        plot for [r=1:words(roles)] rows(sprintf('$1 == "%s" && $5 == "role" && $6 == "%s" && $4 == -1', \
                 word(conds, c), word(roles, r))) using 3:7 with linespoints lw 2 title word(roles, r)
    }
    unset multiplot
}
