# Shared by compare.sh, ab.sh, durability.sh and fanout.sh (sourced, not run): paired rounds on
# two ports, and their median. Each expects a `round PORT` function that prints one round's
# figures, request rate first. sinks.sh uses only `servers` and stop_servers.

# Collectors a script starts go in `servers`; `trap stop_servers EXIT` stops them and removes
# the script's `$data` directory.
servers=()
stop_servers() {
  ((${#servers[@]})) && kill -TERM "${servers[@]}" 2>/dev/null
  wait
  rm -rf "$data"
}

# paired_rounds PAIRS PORT_A PORT_B → one line per pair: "i <round A> <round B>". Which port
# goes first alternates, so drift within a pair falls on both sides equally.
paired_rounds() {
  local i a b
  for i in $(seq "$1"); do
    if ((i % 2)); then
      a=$(round "$2")
      b=$(round "$3")
    else
      b=$(round "$3")
      a=$(round "$2")
    fi
    echo "$i $a $b"
  done
}

# median_of COLUMN LABEL < lines → "LABEL: median m, lowest l, highest h over n pairs"
median_of() {
  sort -n -k"$1" | awk -v c="$1" -v label="$2" '{r[NR] = $c} END {
    median = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%s: median %.3f, lowest %.3f, highest %.3f over %d pairs\n", label, median, r[1], r[NR], NR
  }'
}
