# Task decodability figures from `icl probe decodability` output (needs awk).
#   gnuplot -e "in='DIR/td.csv'; out='DIR/td.png'" scripts/plot_decodability.gp
#       TD against layer, one line per task and the mean (layer 0 = embeddings)
#   ... -e "plot='pairwise'; in='DIR/pairwise.csv'; out='DIR/pairwise.png'"   task x task heatmap
#   ... -e "plot='steps'; in='DIR/td_steps.csv'; out='DIR/td_steps.png'"      layer x step heatmap of the
#       mean TD, and TD per layer with the per-task behaviour over training (needs --checkpoints)
#   ... -e "plot='pca'; layer=1; in='DIR/pca.csv'; out='DIR/pca.png'"         PCA scatter at one layer (needs --pca)
if (!exists("in") || !exists("out")) { print "set in='...csv' and out='...png'"; exit }
if (!exists("plot")) { plot = 'layers' }
# rows of the CSV (header dropped) that satisfy an awk condition on the fields $1, $2, ...
rows(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
# distinct values of field f, in order of appearance, among rows satisfying cond
distinct(f, cond) = system(sprintf("awk -F, 'NR > 1 && (%s) && !s[$%d]++ {printf \"%%s \", $%d}' '%s'", cond, f, f, in))
set datafile separator ','
set datafile missing 'nan'
set terminal pngcairo size 900,600 font ',11' noenhanced
set output out
set key outside right
set grid

if (plot eq 'layers') {
    ids = distinct(3, '$3 >= 0')
    names = distinct(2, '$3 >= 0')
    set title 'Task decodability (leave-one-out k-NN) per layer'
    set xlabel 'layer (0 = embeddings, l = output of block l)'
    set ylabel 'TD'
    set yrange [0:1.05]
    set xtics 1
    plot for [i=1:words(ids)] rows('$3 == '.word(ids, i)) using 1:5 with linespoints title word(names, i), \
         rows('$3 == -1') using 1:5 with linespoints lw 3 lc rgb 'black' title 'mean'
}

if (plot eq 'pairwise') {
    names = distinct(2, '1')
    layer = system(sprintf("awk -F, 'NR == 2 {print $1}' '%s'", in))
    n = words(names)
    set title sprintf('Pairwise task decodability at layer %s', layer)
    set size ratio -1
    set xrange [-0.5:n-0.5]
    set yrange [n-0.5:-0.5]
    set cbrange [0.5:1]
    set palette defined (0.5 'white', 0.75 '#9ecae1', 1 '#08519c')
    set xtics () rotate by 45 right
    set ytics ()
    set for [i=1:n] xtics add (word(names, i) i-1)
    set for [i=1:n] ytics add (word(names, i) i-1)
    unset grid
    plot rows('1') using (int($0) % n):(int($0 / n)):(0.5):(0.5):4 with boxxyerror fc palette fs solid notitle, \
         rows('1') using (int($0) % n):(int($0 / n)):(sprintf('%.2f', $4)) with labels notitle
}

if (plot eq 'steps') {
    set multiplot layout 2,1
    stats rows('$4 == -1 && $2 >= 0') using 2 nooutput
    levels = int(STATS_max) + 1
    n_ckpt = STATS_records / levels
    stats rows('$4 == -1 && $2 >= 0') using 1 nooutput
    dx = n_ckpt > 1 ? (STATS_max - STATS_min) / (n_ckpt - 1) / 2.0 : 0.5
    set title 'Mean task decodability over training'
    set xlabel 'training step'
    set ylabel 'layer'
    set ytics 1
    set cbrange [0:1]
    set palette defined (0 'white', 0.5 '#9ecae1', 1 '#08519c')
    unset grid
    plot rows('$4 == -1 && $2 >= 0') using 1:2:(dx):(0.5):6 with boxxyerror fc palette fs solid notitle
    set grid
    set title 'Mean TD per layer (solid) and per-task behaviour (dashed) over training'
    set ylabel 'TD'
    set yrange [0:1.05]
    set ytics auto nomirror
    set y2tics
    metric = system(sprintf("awk -F, '$2 == -1 {print $5; exit}' '%s'", in))
    set y2label metric
    ids = distinct(4, '$2 == -1')
    names = distinct(3, '$2 == -1')
    # Layers whose TD is nan throughout (identical embeddings at the probed position) have no curve.
    td_layers = distinct(2, '$4 == -1 && $6 != "nan"')
    plot for [l in td_layers] rows(sprintf('$4 == -1 && $2 == %s', l)) using 1:6 with linespoints lw 2 \
             title sprintf('TD layer %s', l), \
         for [i=1:words(ids)] rows('$2 == -1 && $4 == '.word(ids, i)) using 1:6 axes x1y2 with lines dt 2 \
             title sprintf('%s %s', metric, word(names, i))
    unset multiplot
}

if (plot eq 'pca') {
    if (!exists("layer")) { layer = 1 }
    names = distinct(3, '1')
    set title sprintf('PCA of the representations at layer %d', layer)
    set xlabel 'PC 1'
    set ylabel 'PC 2'
    plot for [i=1:words(names)] rows(sprintf('$1 == %d && $3 == "%s"', layer, word(names, i))) using 4:5 \
         with points pt 7 ps 0.6 title word(names, i)
}
