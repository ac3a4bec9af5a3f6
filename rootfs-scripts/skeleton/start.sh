#!/bin/sh
# start.sh: starts the container. Runs
# `bin/wshd --run run --lib lib --root mnt --title "wshd: <id>" --hostname <id>
# [--allow-nested] [--root-caps LIST]`, which runs
# the lib/hook-*.sh scripts (hook-parent-after-clone.sh runs `net.sh setup`
# with PID) and exits 0 only once run/wshd.sock accepts
# connections. wshd's output goes to run/wshd.out.log and run/wshd.err.log.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=start.sh
case "$0" in
  */*) cd "${0%/*}" ;;
esac
. ./lib/common.sh
load_config

if [ -f run/wshd.pid ]; then
  pid=
  read -r pid <run/wshd.pid || true
  if is_uint "$pid" && [ -d "/proc/$pid" ]; then
    die "wshd is already running (pid $pid)"
  fi
fi
[ ! -e run/wshd.pid ] && [ ! -e run/wshd.sock ] || rm -f run/wshd.pid run/wshd.sock

# The network is set up by wshd's hook-parent-after-clone.sh (net.sh setup
# with PID), which makes the container end of the veth pair right in the
# container's network namespace.

# A nested warden needs root jobs that may mount and create namespaces;
# wshd's seccomp filter denies that unless told otherwise. Root jobs'
# capabilities: wshd's default unless root_capabilities says otherwise.
set --
[ "${allow_nested_warden:-false}" = true ] && set -- "$@" --allow-nested
[ -z "${root_capabilities:-}" ] || set -- "$@" --root-caps "$root_capabilities"
# Bind mounts (etc/bind_mounts, checked again: it may have been edited):
# wshd applies them without following symlinks (wshd::setup::apply_binds).
if [ -s etc/bind_mounts ]; then
  n=0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    split_bind_line "$n" "$line"
    [ -e "$src" ] || die "Source path for bind mount does not exist: $src"
    set -- "$@" --bind "$mode:$src:$dst"
  done <etc/bind_mounts
fi

# wshd keeps nothing of our environment: it re-executes itself (read-only,
# helpers/wshd/src/exe.rs) with only the PATH its hooks use, since its
# init's /proc/1/environ is readable by container root. That re-exec happens
# anyway (bin/ is writable), so no `env -i` here: one program less.
if ! ./bin/wshd --run run --lib lib --root mnt --title "wshd: $id" --hostname "$id" "$@" \
  </dev/null >run/wshd.out.log 2>run/wshd.err.log; then
  reason=$(grep -v '^[[:space:]]*$' run/wshd.err.log | tail -n 3 | paste -sd ';' - | sed 's/;/; /g')
  die "wshd failed to start: ${reason:-no message (see run/wshd.err.log)}"
fi
