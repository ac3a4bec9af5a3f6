#!/usr/bin/env bash
# `make bench`: runs every benchmark section in one go and prints medians and
# ratios against peers (unshare+chroot, bwrap, crun, nsenter, plain pipes).
# Not a test: nothing here asserts a speed; the figures go in the README.
#
# Env (set by the Makefile): WARDEN_BIN_DIR (static release binaries),
# WARDEN_ROOTFS (busybox rootfs). Sections: tests/bench/{wsh,iomux,oom,scripts,controller}.sh
# A section that is missing is skipped with a note; one that fails makes the run fail.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
export WARDEN_BIN_DIR WARDEN_ROOTFS

rc=0
for section in wsh iomux oom scripts controller; do
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
exit $rc
