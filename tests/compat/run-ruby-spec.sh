#!/bin/sh
# run-ruby-spec.sh [RSPEC ARGS...]
#
# Runs warden's own RSpec shared examples (lifecycle, running commands, info,
# file transfer, drain, snapshotting, writing pidfile) against OUR
# `warden server`, through the original Ruby warden-client and
# warden-protocol gems. Nothing of warden is copied into this repository:
# the gems and spec/support are loaded from a warden checkout.
#
# Needs root, and: apt-get install ruby ruby-rspec ruby-beefcake
# ruby-eventmachine ruby-yajl (rspec-eventually is not packaged; a small
# shim in shim/ stands in for it).
#
# Environment:
#   WARDEN_SRC      warden checkout (default /work/ref/warden)
#   WARDEN_BIN      directory with warden, wshd, wsh, iomux-spawn, iomux-link,
#                   oom (default target/x86_64-unknown-linux-gnu/release)
#   WARDEN_ROOTFS   container rootfs (default build/rootfs, `make rootfs`; any rootfs
#                   with /bin/bash, e.g. build/rootfs-debian from `make rootfs-debian`)
#   WARDEN_SCRIPTS  lifecycle scripts (default rootfs-scripts)
#   WARDEN_COMPAT_PREFIX  resource prefix of the server under test (default rb)
#   WARDEN_COMPAT_NET     first pool address; each server start takes the
#                   next /24 (default 10.250.0.0)
#   WARDEN_COMPAT_EXAMPLE_TIMEOUT  seconds per example (default 60)
#
# Extra arguments go to rspec, e.g. `-e lifecycle` or `--format progress`.
# Output: rspec's documentation format, rspec's summary with the wall time,
# then a last line `N passed, N failed, N skipped` (skipped = rspec's
# pending) for CI logs. Exit status: non-zero when an example failed or
# rspec did not finish. The full log is in $WARDEN_COMPAT_WORK/rspec.log
# (default /tmp/warden-rs-compat.<pid>).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

WARDEN_SRC=${WARDEN_SRC:-/work/ref/warden}
WARDEN_BIN=${WARDEN_BIN:-$top/target/x86_64-unknown-linux-gnu/release}
WARDEN_ROOTFS=${WARDEN_ROOTFS:-$top/build/rootfs}
WARDEN_SCRIPTS=${WARDEN_SCRIPTS:-$top/rootfs-scripts}
WARDEN_COMPAT_PREFIX=${WARDEN_COMPAT_PREFIX:-rb}
WARDEN_COMPAT_NET=${WARDEN_COMPAT_NET:-10.250.0.0}
WARDEN_COMPAT_WORK=${WARDEN_COMPAT_WORK:-/tmp/warden-rs-compat.$$}
export WARDEN_SRC WARDEN_BIN WARDEN_ROOTFS WARDEN_SCRIPTS WARDEN_COMPAT_PREFIX WARDEN_COMPAT_NET WARDEN_COMPAT_WORK

die() {
  echo "run-ruby-spec.sh: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (the examples start real containers)"
for d in warden/spec/support/examples warden-protocol/lib warden-client/lib warden/lib/warden; do
  [ -d "$WARDEN_SRC/$d" ] || die "$WARDEN_SRC/$d not found: set WARDEN_SRC to a warden checkout"
done
for b in warden wshd wsh iomux-spawn iomux-link oom; do
  [ -x "$WARDEN_BIN/$b" ] || die "$WARDEN_BIN/$b not found: build with make build, or set WARDEN_BIN"
done
[ -d "$WARDEN_ROOTFS/etc" ] && [ -e "$WARDEN_ROOTFS/bin/bash" ] || die "$WARDEN_ROOTFS is not a rootfs with /etc and /bin/bash (warden runs scripts with bash): run make rootfs or make rootfs-debian, or set WARDEN_ROOTFS"
[ -x "$WARDEN_SCRIPTS/create.sh" ] || die "$WARDEN_SCRIPTS has no create.sh: set WARDEN_SCRIPTS"
command -v ruby >/dev/null || die "ruby not found: apt-get install ruby"
command -v rspec >/dev/null || die "rspec not found: apt-get install ruby-rspec"
command -v rsync >/dev/null || die "rsync not found (copy_in/copy_out need it): apt-get install rsync"
for lib in beefcake eventmachine yajl; do
  ruby -e "require '$lib'" 2>/dev/null || die "ruby library $lib missing: apt-get install ruby-$lib"
done

# The shim only when the real gem is absent.
shim=
ruby -e 'require "rspec/eventually"' 2>/dev/null || shim="-I $here/shim"

mkdir -p "$WARDEN_COMPAT_WORK"
log=$WARDEN_COMPAT_WORK/rspec.log
cleanup() {
  # Whatever a failed example left behind with our prefix.
  prefix=$WARDEN_COMPAT_PREFIX depot_path=$WARDEN_COMPAT_WORK/containers \
    "$WARDEN_SCRIPTS/clear.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mkdir -p "$WARDEN_COMPAT_WORK/containers"

start=$(date +%s)
{
  # shellcheck disable=SC2086
  rspec $shim -I "$WARDEN_SRC/warden-protocol/lib" -I "$WARDEN_SRC/warden-client/lib" \
    -I "$WARDEN_SRC/warden/lib" --format documentation "$@" "$here/warden_rs_spec.rb" 2>&1
  echo "$?" >"$WARDEN_COMPAT_WORK/rspec.rc"
} | tee "$log"
rc=$(cat "$WARDEN_COMPAT_WORK/rspec.rc" 2>/dev/null || echo 1)
end=$(date +%s)

summary=$(grep -E '^[0-9]+ examples?, [0-9]+ failures?' "$log" | tail -n 1)
echo
echo "compat: ${summary:-no rspec summary (see $log)}; wall time $((end - start))s; log $log"
if [ -z "$summary" ]; then
  # rspec did not finish (crash, abort): count the run as one failure.
  echo "run-ruby-spec.sh: rspec printed no summary; counting the run as failed"
  echo "0 passed, 1 failed, 0 skipped"
  [ "$rc" != 0 ] || rc=1
  exit "$rc"
fi
# "75 examples, 7 failures, 2 pending" -> "66 passed, 7 failed, 2 skipped"
total=$(echo "$summary" | sed -E 's/^([0-9]+) examples?.*/\1/')
failed=$(echo "$summary" | sed -E 's/^[0-9]+ examples?, ([0-9]+) failures?.*/\1/')
case $summary in
*pending*) skipped=$(echo "$summary" | sed -E 's/.* ([0-9]+) pending.*/\1/') ;;
*) skipped=0 ;;
esac
echo "$((total - failed - skipped)) passed, $failed failed, $skipped skipped"
# Non-zero when an example failed, even if rspec itself said otherwise.
if [ "$failed" -gt 0 ] && [ "$rc" = 0 ]; then
  rc=1
fi
exit "$rc"
