#!/usr/bin/env bash
# `make bench`: runs every benchmark section in one go and prints medians and
# ratios against peers (unshare+chroot, bwrap, crun, nsenter, plain pipes).
# Not a test: nothing here asserts a speed; the figures go in the README.
#
# Env (set by the Makefile): WARDEN_BIN_DIR (static release binaries),
# WARDEN_ROOTFS (busybox rootfs), WARDEN_ROOTFS_DEBIAN (Debian rootfs,
# default build/rootfs-debian; `make rootfs-debian`: the controller section
# then also times create on it against busybox, else skips that with a note).
# Optional: WARDEN_SRC, a checkout of cloudfoundry/warden (work tree or bare
# git dir, e.g. `git clone https://github.com/cloudfoundry/warden`): the wsh
# section then builds warden's C wshd/wsh in a temp dir and times its boot
# against ours; unset, that comparison is skipped with a note.
# Sections: tests/bench/{wsh,iomux,oom,scripts,controller,scale}.sh
# A section that is missing is skipped with a note; one that fails makes the run fail.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
WARDEN_ROOTFS_DEBIAN=${WARDEN_ROOTFS_DEBIAN:-$(cd "$here/../.." && pwd)/build/rootfs-debian}
export WARDEN_BIN_DIR WARDEN_ROOTFS WARDEN_ROOTFS_DEBIAN
if [ -n "${WARDEN_SRC:-}" ]; then
  export WARDEN_SRC
  echo "(WARDEN_SRC=$WARDEN_SRC: comparing with warden's C wshd)"
else
  unset WARDEN_SRC
  echo "(WARDEN_SRC unset: the comparison with warden's C wshd is skipped)"
fi

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
exit $rc
