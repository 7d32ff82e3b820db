# Partial finetuning figure from `icl probe finetune` output (needs awk):
#   gnuplot -e "in='DIR/finetune.csv'; out='DIR/finetune.png'" scripts/plot_finetune.gp
# Bars for the original model, the first-n and the last-n finetuned copies: task decodability at the
# best layer, and the mean query accuracy (token families) or squared error (vector families).
if (!exists("in") || !exists("out")) { print "set in='...csv' and out='...png'"; exit }
rows(cond) = sprintf("< awk -F, 'NR > 1 && (%s)' '%s'", cond, in)
set datafile separator ','
set datafile missing 'nan'
set terminal pngcairo size 900,450 font ',11' noenhanced
set output out
metric = system(sprintf("awk -F, '$2 == \"accuracy\" || $2 == \"mse\" {print $2; exit}' '%s'", in))
x(v) = v eq 'original' ? 0 : v eq 'first' ? 1 : 2
set xtics ('original' 0, 'first n' 1, 'last n' 2)
set xrange [-0.6:2.6]
set style fill solid 0.7 border -1
set boxwidth 0.6
set grid ytics
unset key
set multiplot layout 1,2 title 'Finetuning the first n vs the last n blocks'
set title 'task decodability (best layer)'
set yrange [0:1.05]
plot rows('$2 == "td_best"') using (x(strcol(1))):4 with boxes lc rgb '#4292c6', \
     rows('$2 == "td_best"') using (x(strcol(1))):4:(sprintf('%.3f', $4)) with labels offset 0,0.8
set title sprintf('mean %s', metric)
set yrange [0:*]
plot rows(sprintf('$2 == "%s" && $3 == "mean"', metric)) using (x(strcol(1))):4 with boxes lc rgb '#fd8d3c', \
     rows(sprintf('$2 == "%s" && $3 == "mean"', metric)) using (x(strcol(1))):4:(sprintf('%.3f', $4)) \
         with labels offset 0,0.8
unset multiplot
