# Figures of `icl probe function-vectors`:
#   gnuplot -e "dir='out/probe-function-vectors'" scripts/plot_function_vectors.gp
# writes into dir:
#   aie.png          average indirect effect of every head (layer x head), mean over tasks;
#                    the heads of the function vector are marked with their rank
#   fv_accuracy.png  accuracy on clean, zero-shot and shuffled-label prompts without / with the FV, per task
if (!exists("dir")) dir = "out/probe-function-vectors"
set datafile separator ","
set terminal pngcairo size 640,480 font ",10" noenhanced

aie = dir."/aie.csv"
ev = dir."/fv_eval.csv"
sel(file, cond) = sprintf("< awk -F, 'NR > 1 && (%s)' %s", cond, file)
top_k = system("awk -F: '/\"top_k\"/ {gsub(/[ ,\\t]/, \"\", $2); print $2}' ".dir."/function_vectors.json") + 0
L = system("awk -F, 'NR > 1 && $1 + 1 > n {n = $1 + 1} END {print n}' ".aie) + 0
NH = system("awk -F, 'NR > 1 && $2 + 1 > n {n = $2 + 1} END {print n}' ".aie) + 0
m = system("awk -F, 'NR > 1 && $3 == \"mean\" {v = $4 < 0 ? -$4 : $4; if (v > m) m = v} END {print m + 1e-12}' ".aie) + 0

set output dir."/aie.png"
set title sprintf("average indirect effect per head (mean over tasks); #: rank among the top %d", top_k)
set xlabel "head"
set ylabel "layer"
set xrange [-0.5:NH - 0.5]
set yrange [-0.5:L - 0.5]
set xtics 1
set ytics 1
set cbrange [-m:m]
set cblabel "AIE: increase of P(correct answer)"
set palette defined (-1 "#2166ac", 0 "white", 1 "#b2182b")
plot sel(aie, "$3 == \"mean\"") using 2:1:4 with image notitle, \
     sel(aie, sprintf("$3 == \"mean\" && $5 <= %d", top_k)) using 2:1:(sprintf("#%d", $5)) with labels notitle

set output dir."/fv_accuracy.png"
set terminal pngcairo size 900,420 font ",10" noenhanced
set title "accuracy without and with the function vector"
set autoscale
set xlabel ""
set ylabel "accuracy"
set yrange [0:1]
set xtics autofreq
set ytics autofreq
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right
conds = "clean zero_shot shuffled"
plot for [c = 1:3] for [w = 0:1] \
     sel(ev, sprintf("$2 == \"%s\" && $3 == %d && $4 == \"accuracy\"", word(conds, c), w)) \
     using 5:xtic(1) title sprintf("%s, %s", word(conds, c), w ? "with FV" : "without") \
     lc c fs solid (w ? 0.9 : 0.3)
