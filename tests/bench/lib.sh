# Sourced by the bench sections (tests/bench/*.sh): statistics, printing and
# the JSON lines that run.sh gathers into one file.
#
# BENCH_OUT (optional): a JSON-lines file. Each measured row appends
#   {"section":S,"name":N,"unit":U,"median":M,"p90":P,"n":K}
# and each ratio
#   {"section":S,"ratio":NAME,"value":V,"target":"<= 0.8","met":true|false}
# (run.sh wraps them with the date and load average into build/bench.json).
# Without BENCH_OUT the sections only print.

BENCH_SECTION=${BENCH_SECTION:-bench}

# stats: numbers on stdin (one per line or blank-separated) -> "MEDIAN P90 N".
# Median: middle value (mean of the two middle ones for even N); p90: the
# nearest-rank 90th percentile (the smallest value with >= 90% at or below).
stats() {
  tr -s ' \t' '\n\n' | grep -E '^[0-9.eE+-]+$' | sort -g |
    awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "nan nan 0"; exit }
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      k = int(NR * 0.9); if (k < NR * 0.9) k++; if (k < 1) k = 1
      printf "%.3f %.3f %d\n", m, v[k], NR }'
}

# row NAME UNIT: numbers on stdin; prints "NAME median M p90 P UNIT (n=N)"
# and appends the JSON line.
row() {
  local name=$1 unit=$2 s m p n
  s=$(stats)
  read -r m p n <<<"$s"
  printf '    %-34s median %9s  p90 %9s %s  (n=%s)\n' "$name" "$m" "$p" "$unit" "$n"
  if [ -n "${BENCH_OUT:-}" ]; then
    printf '{"section":"%s","name":"%s","unit":"%s","median":%s,"p90":%s,"n":%s}\n' \
      "$BENCH_SECTION" "$name" "$unit" "$(jnum "$m")" "$(jnum "$p")" "$n" >>"$BENCH_OUT"
  fi
}

# absent NAME WHY: a row that could not be measured in this run.
absent() {
  printf '    %-34s absent: %s\n' "$1" "$2"
  if [ -n "${BENCH_OUT:-}" ]; then
    printf '{"section":"%s","name":"%s","absent":"%s"}\n' "$BENCH_SECTION" "$1" \
      "$(printf '%s' "$2" | tr '"\\\n' "''  ")" >>"$BENCH_OUT"
  fi
}

# reference NAME UNIT VALUE SOURCE: a documented figure, not measured here.
reference() {
  printf '    %-34s %9s %s  (reference, not measured in this run: %s)\n' "$1" "$3" "$2" "$4"
  if [ -n "${BENCH_OUT:-}" ]; then
    printf '{"section":"%s","name":"%s","unit":"%s","reference":%s,"source":"%s"}\n' \
      "$BENCH_SECTION" "$1" "$2" "$(jnum "$3")" "$4" >>"$BENCH_OUT"
  fi
}

# ratio NAME A B OP TARGET: prints A/B and whether it meets "OP TARGET"
# (OP is <= or >=); appends the JSON line. A or B empty/nan: not computed.
ratio() {
  local name=$1 a=$2 b=$3 op=$4 target=$5 v met
  case "$a$b" in *nan* | '') echo "    $name: not computed (a figure is missing)"; return 0 ;; esac
  v=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f", a / b }')
  met=$(awk -v v="$v" -v t="$target" -v op="$op" 'BEGIN {
    if (v == "nan") print "false"; else if (op == "<=") print (v <= t ? "true" : "false");
    else print (v >= t ? "true" : "false") }')
  printf '    %-48s %7sx  (target %s %sx: %s)\n' "$name" "$v" "$op" "$target" \
    "$([ "$met" = true ] && echo met || echo MISSED)"
  if [ -n "${BENCH_OUT:-}" ]; then
    printf '{"section":"%s","ratio":"%s","value":%s,"target":"%s %s","met":%s}\n' \
      "$BENCH_SECTION" "$name" "$(jnum "$v")" "$op" "$target" "$met" >>"$BENCH_OUT"
  fi
}

# ratio_ref NAME A B: prints A/B for reference (no target); JSON target null.
ratio_ref() {
  local v
  case "$2$3" in *nan* | '') return 0 ;; esac
  v=$(awk -v a="$2" -v b="$3" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f", a / b }')
  printf '    %-48s %7sx  (reference)\n' "$1" "$v"
  if [ -n "${BENCH_OUT:-}" ]; then
    printf '{"section":"%s","ratio":"%s","value":%s,"target":null,"met":null}\n' \
      "$BENCH_SECTION" "$1" "$(jnum "$v")" >>"$BENCH_OUT"
  fi
}

# The median (or p90) of a hyperfine --export-json result by command name,
# in ms; and all its times (ms, one per line).
hf_times() { # JSON NAME
  ruby -rjson -e 'r = JSON.parse(File.read(ARGV[0]))["results"].find { |x| x["command"] == ARGV[1] }
    puts r["times"].map { |t| format("%.4f", t * 1000) } if r' "$1" "$2"
}
hf_median() { hf_times "$1" "$2" | stats | awk '{ print $1 }'; }

# hf_rounds OUT.json ROUNDS RUNS WARMUP [hyperfine args...] -- -n NAME CMD ...:
# one hyperfine run per round with RUNS/ROUNDS runs of each command, the
# commands' order rotated every round, so a change in the machine's load
# hits every command alike; the rounds' times are merged by name into
# OUT.json (hyperfine's layout: results[].command, results[].times).
hf_rounds() {
  local out=$1 rounds=$2 runs=$3 warm=$4 r i k
  shift 4
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  local names=() cmds=()
  while [ $# -gt 0 ]; do names+=("$2"); cmds+=("$3"); shift 3; done
  local n=${#names[@]} per=$(( (runs + rounds - 1) / rounds )) parts=()
  for ((r = 0; r < rounds; r++)); do
    local args=()
    for ((i = 0; i < n; i++)); do
      k=$(( (i + r) % n ))
      args+=(-n "${names[$k]}" "${cmds[$k]}")
    done
    hyperfine --style basic "${opts[@]}" --warmup "$warm" --runs "$per" \
      --export-json "$out.$r" "${args[@]}" >"$out.$r.log" 2>&1 || { cat "$out.$r.log" >&2; return 1; }
    parts+=("$out.$r")
    warm=2
  done
  ruby -rjson -e 'all = Hash.new { |h, k| h[k] = [] }
    ARGV[1..].each { |f| JSON.parse(File.read(f))["results"].each { |x| all[x["command"]].concat(x["times"]) } }
    File.write(ARGV[0], JSON.generate({ "results" => all.map { |c, t| { "command" => c, "times" => t } } }))' \
    "$out" "${parts[@]}"
}

jnum() { case $1 in '' | nan | *[!0-9.eE+-]*) echo null ;; *) echo "$1" ;; esac; }

# now_us: CLOCK_REALTIME in microseconds (bash's $EPOCHREALTIME, no fork).
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
