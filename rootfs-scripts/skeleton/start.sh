#!/bin/sh
# start.sh: starts the container. Runs `net.sh setup`, then
# `bin/wshd --run run --lib lib --root mnt --title "wshd: <id>"`, which runs
# the lib/hook-*.sh scripts and exits 0 only once run/wshd.sock accepts
# connections. wshd's output goes to run/wshd.out.log and run/wshd.err.log.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=start.sh
cd "$(dirname "$0")"
. ./lib/common.sh
load_config

if [ -f run/wshd.pid ]; then
  pid=$(cat run/wshd.pid)
  if is_uint "$pid" && [ -d "/proc/$pid" ]; then
    die "wshd is already running (pid $pid)"
  fi
  rm -f run/wshd.pid
fi
rm -f run/wshd.sock

./net.sh setup

if ! ./bin/wshd --run run --lib lib --root mnt --title "wshd: $id" \
  </dev/null >run/wshd.out.log 2>run/wshd.err.log; then
  reason=$(grep -v '^[[:space:]]*$' run/wshd.err.log | tail -n 3 | paste -sd ';' - | sed 's/;/; /g')
  die "wshd failed to start: ${reason:-no message (see run/wshd.err.log)}"
fi
