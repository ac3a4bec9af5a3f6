#!/bin/sh
# hook-parent-before-clone.sh: run by wshd on the host after it has unshared
# its mount namespace, before it clones the container's init. Mounts the
# container root (overlay of the base rootfs and tmp/rootfs/upper) onto mnt/
# in that private namespace; the host's mount table is never touched.
set -eu

script=hook-parent-before-clone.sh
cd "${0%/*}/.."
. ./lib/common.sh
load_config

require_own_mount_ns
# Nothing mounted from here on may propagate back to the host.
mount --make-rprivate / || die "making / private in wshd's mount namespace failed"
mount_rootfs
