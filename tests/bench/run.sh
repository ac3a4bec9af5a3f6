#!/usr/bin/env bash
# `make bench`: every benchmark section in one run, each row next to its
# peers measured in the same run (interleaved where the section can), with
# medians, p90 and ratios against the targets of issue 12; at the end a
# summary of every ratio and one JSON file for tracking. Not a test: nothing
# here fails on a missed target (a section that breaks fails the run).
#
# Env (set by the Makefile): WARDEN_BIN_DIR (static release binaries),
# WARDEN_ROOTFS (busybox rootfs), WARDEN_ROOTFS_DEBIAN (Debian rootfs,
# default build/rootfs-debian; without it the controller section skips the
# Debian rows with a note).
# Optional: WARDEN_SRC, a checkout of cloudfoundry/warden (work tree or bare
# git dir): the sections build warden's C wshd/wsh, iomux and oom from it
# (-O2) and use its Ruby warden-client; unset, those rows say they are
# absent. BENCH_JSON: where the JSON goes (default build/bench.json):
#   {"date": UTC ISO 8601, "host": uname -r, "nproc": N,
#    "loadavg_start": "...", "loadavg_end": "...", "seconds": S,
#    "rows": [ {"section","name","unit","median","p90","n"} |
#              {"section","name","absent": why} |
#              {"section","name","unit","reference","source"} ],
#    "ratios": [ {"section","ratio","value","target","met"} ]}
# Sections: tests/bench/{wsh,iomux,oom,scripts,controller,scale}.sh (lib.sh holds
# their shared statistics). A missing section is skipped with a note.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
WARDEN_ROOTFS_DEBIAN=${WARDEN_ROOTFS_DEBIAN:-$top/build/rootfs-debian}
BENCH_JSON=${BENCH_JSON:-$top/build/bench.json}
export WARDEN_BIN_DIR WARDEN_ROOTFS WARDEN_ROOTFS_DEBIAN
if [ -n "${WARDEN_SRC:-}" ]; then
  export WARDEN_SRC
  echo "(WARDEN_SRC=$WARDEN_SRC: warden's C helpers and Ruby warden-client are measured too)"
else
  unset WARDEN_SRC
  echo "(WARDEN_SRC unset: the rows of warden's C helpers and Ruby warden-client are absent)"
fi
BENCH_OUT=$(mktemp /tmp/warden-bench-rows.XXXXXX)
export BENCH_OUT
trap 'rm -f "$BENCH_OUT"' EXIT
date_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
echo "bench run $date_start on $(nproc) cores, load average $load_start"

rc=0
for section in wsh iomux oom scripts controller scale; do
  script="$here/$section.sh"
  echo "=== bench: $section"
  if [ ! -f "$script" ]; then
    echo "(no $section.sh: skipped)"
    continue
  fi
  if ! bash "$script"; then
    echo "bench section $section FAILED" >&2
    rc=1
  fi
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
secs=$(( $(date +%s) - t0 ))
echo "=== summary ($date_start, ${secs} s, load average $load_start at the start, $load_end at the end)"
mkdir -p "$(dirname "$BENCH_JSON")"
ruby -rjson -e '
  rows, ratios = [], []
  File.foreach(ARGV[0]) { |l| j = JSON.parse(l); (j.key?("ratio") ? ratios : rows) << j }
  ratios.each do |r|
    v = r["value"].nil? ? "n/a" : format("%.3fx", r["value"])
    t = r["target"] ? "target #{r["target"]}x: #{r["met"] ? "met" : "MISSED"}" : "reference"
    printf("  %-11s %-50s %9s  %s\n", r["section"], r["ratio"], v, t)
  end
  File.write(ARGV[1], JSON.pretty_generate({
    "date" => ARGV[2], "host" => `uname -r`.strip, "nproc" => ARGV[6].to_i,
    "loadavg_start" => ARGV[3], "loadavg_end" => ARGV[4], "seconds" => ARGV[5].to_i,
    "rows" => rows, "ratios" => ratios }) + "\n")
' "$BENCH_OUT" "$BENCH_JSON" "$date_start" "$load_start" "$load_end" "$secs" "$(nproc)" ||
  { echo "bench: could not write $BENCH_JSON" >&2; rc=1; }
echo "(rows and ratios: $BENCH_JSON)"
exit $rc
