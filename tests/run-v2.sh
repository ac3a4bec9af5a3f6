#!/bin/sh
# make test-v2: the cgroup v2 tests, built on this host and run as root in a
# throwaway VM with a pure cgroup v2 kernel (shared/vm/run: QEMU, Debian
# bookworm's 6.1 kernel, cgroup v1 off). The repository is shared into the
# VM at the same path; containers, depots and sockets live under the VM's
# /tmp (the tests' scratch dirs), never on the share.
#
# Runs: scripts::v2_* (containers through create.sh/start.sh), every test
# of tests/devices.rs and of tests/limits.rs (memory/OOM, cpu weight, pids,
# disk image limits through a server), with WARDEN_REQUIRE_CGROUP_V2=1 so
# none of them can skip or run on v1. Env: VM_RUN (default: shared/vm/run beside the repository, as CI lays
# it out, else /work/shared/vm/run), V2_TIMEOUT (seconds for
# the whole VM run, default 1200), WARDEN_BIN_DIR / WARDEN_ROOTFS as for
# `make test` (the Makefile sets them), plus shared/vm's own (VM_CACHE, ...).
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ -z "${VM_RUN:-}" ]; then
  VM_RUN=$repo/../shared/vm/run
  [ -x "$VM_RUN" ] || VM_RUN=/work/shared/vm/run
fi
vm=$VM_RUN
timeout=${V2_TIMEOUT:-1200}
[ -x "$vm" ] || { echo "test-v2: VM runner $vm not found (set VM_RUN)" >&2; exit 1; }

built=$(${CARGO:-cargo} test --release -p warden-tests --test scripts --test devices --test limits --no-run 2>&1) || {
  printf '%s\n' "$built" >&2
  exit 1
}
exe() { # test name -> its binary
  printf '%s\n' "$built" | sed -n "s|.*Executable tests/$1\.rs (\(.*\))\$|\1|p" | tail -n 1
}
scripts=$(exe scripts)
devices=$(exe devices)
limits=$(exe limits)
for b in "$scripts" "$devices" "$limits"; do
  case "$b" in
    /*) ;;
    *) b=$repo/$b ;;
  esac
  [ -x "$b" ] || { echo "test-v2: test binary not found in cargo's output:" >&2; printf '%s\n' "$built" >&2; exit 1; }
  case "$b" in
    "$repo"/*) ;;
    *) echo "test-v2: $b is outside $repo (the VM only sees the repository)" >&2; exit 1 ;;
  esac
done

start=$(date +%s)
set +e
"$vm" --timeout "$timeout" --share "$repo" \
  -e WARDEN_REQUIRE_CGROUP_V2=1 -e WARDEN_BIN_DIR -e WARDEN_ROOTFS -e RUST_BACKTRACE=1 \
  -- sh -c 'uname -r; set -e; "$1" --test-threads=1; "$2" --test-threads=1 v2_; "$3" --test-threads=1' sh "$devices" "$scripts" "$limits"
rc=$?
set -e
echo "test-v2: exit status $rc after $(($(date +%s) - start)) s (timeout ${timeout} s)"
exit "$rc"
