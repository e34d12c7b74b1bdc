set terminal pngcairo size 1000,560 noenhanced font ',10'
set output 'instructions.png'
set title 'Instructions per malloc+free pair, tight loop (callgrind, loop overhead removed)'
set ylabel 'instructions'
set style data histogram
set style histogram clustered gap 2
set style fill solid 0.7 border -1
set grid ytics
set yrange [0:*]
set key top right
set xtics rotate by -20
plot 'instructions.dat' using 2:xtic(1) title '128 B'
