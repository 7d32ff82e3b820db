# RSA figures from `icl probe rsa` output (needs awk).
#   gnuplot -e "in='DIR/rsa.csv'; out='DIR/rsa.png'" scripts/plot_rsa.gp
#       alignment (Spearman rho) against layer, one line per shot count and hypothesis;
#       filled points: permutation p < 0.05
#   ... -e "plot='rsm'; in='DIR/rsm_layer.csv'; out='DIR/rsm.png'"   the RSM heatmaps, one per shot count
if (!exists("in") || !exists("out")) { print "set in='...csv' and out='...png'"; exit }
if (!exists("plot")) { plot = 'alignment' }
rows(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
distinct(f, cond) = system(sprintf("awk -F, 'NR > 1 && (%s) && !s[$%d]++ {printf \"%%s \", $%d}' '%s'", cond, f, f, in))
set datafile separator ','
set datafile missing 'nan'
set terminal pngcairo size 900,600 font ',11' noenhanced
set output out

if (plot eq 'alignment') {
    shots = distinct(1, '1')
    hyps = distinct(3, '1')
    set key outside right
    set grid
    set title 'RSA: alignment of the representational similarity with each hypothesis'
    set xlabel 'layer (0 = embeddings, l = output of block l)'
    set ylabel 'Spearman rho'
    set xtics 1
    plot for [i=1:words(shots)] for [h=1:words(hyps)] \
             rows(sprintf('$1 == %s && $3 == "%s"', word(shots, i), word(hyps, h))) using 2:4 \
             with lines lc i dt h title sprintf('%s-shot, %s', word(shots, i), word(hyps, h)), \
         for [i=1:words(shots)] for [h=1:words(hyps)] \
             rows(sprintf('$1 == %s && $3 == "%s"', word(shots, i), word(hyps, h))) using 2:4:($5 < 0.05 ? 7 : 6) \
             with points pt variable lc i notitle
}

if (plot eq 'rsm') {
    shots = distinct(1, '1')
    layer = system(sprintf("awk -F, 'NR == 2 {print $2}' '%s'", in))
    ns = words(shots)
    stats rows('$1 == '.word(shots, 1)) using 3 nooutput
    last = STATS_max
    set multiplot layout 1,ns title sprintf('Representational similarity matrices at layer %s (items task-major)', layer)
    set size ratio -1
    set cbrange [-1:1]
    set palette defined (-1 '#2166ac', 0 'white', 1 '#b2182b')
    unset key
    set xlabel 'item'
    set ylabel 'item'
    do for [i=1:ns] {
        set title sprintf('%s-shot', word(shots, i))
        set xrange [-0.5:last+0.5]
        set yrange [last+0.5:-0.5]
        plot rows('$1 == '.word(shots, i)) using 3:4:5 with image
    }
    unset multiplot
}
