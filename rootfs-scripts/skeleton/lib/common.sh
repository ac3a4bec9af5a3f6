# Shared shell functions for the warden-rs lifecycle scripts.
#
# Sourced (never run) by the host scripts (setup.sh, create.sh, destroy.sh,
# clear.sh), by the container's start.sh, stop.sh, net.sh and setup.sh, and by
# the host-side wshd hooks. Everything here is POSIX sh and defines
# functions only: sourcing it has no side effects.
#
# Conventions: every script sets `script` to its own name before sourcing;
# `die` prints "<script>: <message>" on stderr and exits 1.

script=${script:-warden}

die() {
  echo "$script: $*" >&2
  exit 1
}

warn() {
  echo "$script: $*" >&2
}

# Loads etc/config of the container directory that is the current directory.
load_config() {
  [ -f etc/config ] || die "missing etc/config in $(pwd)"
  . ./etc/config
}

# ---- validation ------------------------------------------------------------

is_uint() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ "${#1}" -le 9 ]
}

is_ipv4() {
  case "$1" in
    '' | *[!0-9.]* | .* | *. | *..*) return 1 ;;
  esac
  _ip_rest=$1
  _ip_n=0
  while [ -n "$_ip_rest" ]; do
    _ip_oct=${_ip_rest%%.*}
    case "$_ip_rest" in
      *.*) _ip_rest=${_ip_rest#*.} ;;
      *) _ip_rest= ;;
    esac
    is_uint "$_ip_oct" || return 1
    [ "${#_ip_oct}" -le 3 ] && [ "$_ip_oct" -le 255 ] || return 1
    _ip_n=$((_ip_n + 1))
  done
  [ "$_ip_n" -eq 4 ]
}

# ADDR/LEN with 0 <= LEN <= 32.
is_cidr() {
  case "$1" in
    */*) ;;
    *) return 1 ;;
  esac
  is_ipv4 "${1%/*}" && is_uint "${1#*/}" && [ "${1#*/}" -le 32 ]
}

# Prefix length of a dotted netmask (255.255.255.252 -> 30); fails on a
# non-contiguous mask.
mask_len() {
  is_ipv4 "$1" || return 1
  _ml_len=0
  _ml_rest=$1.
  _ml_seen_short=no
  while [ -n "$_ml_rest" ]; do
    _ml_oct=${_ml_rest%%.*}
    _ml_rest=${_ml_rest#*.}
    case "$_ml_oct" in
      255) _ml_bits=8 ;; 254) _ml_bits=7 ;; 252) _ml_bits=6 ;; 248) _ml_bits=5 ;;
      240) _ml_bits=4 ;; 224) _ml_bits=3 ;; 192) _ml_bits=2 ;; 128) _ml_bits=1 ;;
      0) _ml_bits=0 ;;
      *) return 1 ;;
    esac
    if [ "$_ml_seen_short" = yes ] && [ "$_ml_bits" -ne 0 ]; then
      return 1
    fi
    [ "$_ml_bits" -eq 8 ] || _ml_seen_short=yes
    _ml_len=$((_ml_len + _ml_bits))
  done
  echo "$_ml_len"
}

# Resource prefix: [a-z0-9]{1,6}.
is_prefix() {
  case "$1" in
    '' | *[!a-z0-9]*) return 1 ;;
  esac
  [ "${#1}" -le 6 ]
}

# Container id / handle: [0-9a-z]{1,32} (warden handles are 11 chars [0-9a-v]).
is_id() {
  case "$1" in
    '' | *[!0-9a-z]*) return 1 ;;
  esac
  [ "${#1}" -le 32 ]
}

# Interface name: [A-Za-z0-9-], 1..15 chars.
is_ifname() {
  case "$1" in
    '' | *[!A-Za-z0-9-]*) return 1 ;;
  esac
  [ "${#1}" -le 15 ]
}

# Root sessions' capabilities (root_capabilities, wshd --root-caps):
# "none", or comma-separated canonical names, each one wshd may grant
# (every capability but those acting on the whole host; see
# helpers/wshd/src/harden.rs). On failure $bad_cap names the culprit.
is_root_caps() {
  bad_cap=
  [ "$1" = none ] && return 0
  _rc_rest=$1,
  while [ -n "$_rc_rest" ]; do
    _rc_cap=${_rc_rest%%,*}
    _rc_rest=${_rc_rest#*,}
    case "$_rc_cap" in
      CAP_CHOWN | CAP_DAC_OVERRIDE | CAP_FOWNER | CAP_FSETID | CAP_KILL | CAP_SETGID | CAP_SETUID | \
        CAP_SETPCAP | CAP_LINUX_IMMUTABLE | CAP_NET_BIND_SERVICE | CAP_NET_BROADCAST | CAP_NET_ADMIN | \
        CAP_NET_RAW | CAP_IPC_LOCK | CAP_IPC_OWNER | CAP_SYS_CHROOT | CAP_SYS_ADMIN | CAP_SYS_NICE | \
        CAP_SYS_RESOURCE | CAP_MKNOD | CAP_LEASE | CAP_AUDIT_WRITE | CAP_SETFCAP) ;;
      *)
        bad_cap=${_rc_cap:-"(empty name)"}
        return 1
        ;;
    esac
  done
  return 0
}

# Absolute path without "." or ".." components, doubled slashes, or
# characters that the overlay option string and etc/config cannot carry
# (whitespace, comma, colon, quotes, backslash).
is_clean_abs_path() {
  case "$1" in
    /*) ;;
    *) return 1 ;;
  esac
  case "$1" in
    *//* | */./* | */../* | */. | */.. | *[,:\'\"\\]* | *[[:space:]]*) return 1 ;;
  esac
  return 0
}

# ---- container root (overlay) --------------------------------------------

# split_bind_line N LINE: splits one etc/bind_mounts line "ro|rw<TAB>src<TAB>dst"
# into $mode $src $dst, or dies naming bind mount N. Paths must be plain absolute
# paths; dst must not be /. Used by create.sh (to fail early) and again by
# start.sh, which passes them to wshd --bind (the file may have been edited since).
split_bind_line() {
  _tab='	'
  _rest=${2#*"$_tab"}
  mode=${2%%"$_tab"*}
  src=${_rest%%"$_tab"*}
  dst=${_rest#*"$_tab"}
  case "$mode" in
    ro | rw) ;;
    *) die "bind mount $1: bad mode (want ro or rw): $mode" ;;
  esac
  [ "$_rest" != "$2" ] && [ "$dst" != "$_rest" ] || die "bind mount $1: want mode<TAB>src<TAB>dst: $2"
  case "$dst" in
    *"$_tab"*) die "bind mount $1: too many fields: $2" ;;
  esac
  is_clean_abs_path "$src" || die "bind mount $1: src must be a plain absolute path: $src"
  is_clean_abs_path "$dst" || die "bind mount $1: dst must be a plain absolute path: $dst"
  [ "$dst" != / ] || die "bind mount $1: dst must not be /"
}

# Mounts the base rootfs read-only as the lower layer and tmp/rootfs/upper as
# the writable layer onto mnt/. Run only inside a private mount namespace.
mount_rootfs() {
  [ -d "$rootfs_path" ] || die "rootfs $rootfs_path not found"
  [ -d tmp/rootfs/upper ] && [ -d tmp/rootfs/work ] && [ -d mnt ] ||
    mkdir -p tmp/rootfs/upper tmp/rootfs/work mnt
  if ! mount -n -t overlay -o "lowerdir=$rootfs_path,upperdir=$PWD/tmp/rootfs/upper,workdir=$PWD/tmp/rootfs/work" \
    "warden-$prefix-$id" mnt; then
    die "overlay mount of $rootfs_path onto $PWD/mnt failed"
  fi
}

# Fails when this process shares its mount namespace with the host's init or
# with its grandparent (the process that started wshd): the hooks that mount
# must never touch the host's mount table. (Builtins only: `test -ef`
# compares the namespace inodes; the stat line is parsed after the comm
# field, which may hold spaces.)
require_own_mount_ns() {
  _ns_gp=0
  if [ -r "/proc/$PPID/stat" ]; then
    read -r _ns_stat <"/proc/$PPID/stat" || _ns_stat=
    # After "pid (comm) ": state ppid ...
    set -- ${_ns_stat##*) }
    [ $# -lt 2 ] || _ns_gp=$2
  fi
  for _ns_pid in 1 "$_ns_gp"; do
    [ "$_ns_pid" -gt 0 ] 2>/dev/null || continue
    if [ "/proc/$_ns_pid/ns/mnt" -ef /proc/self/ns/mnt ]; then
      die "refusing to mount: not in a private mount namespace (wshd must unshare CLONE_NEWNS first)"
    fi
  done
}

# ---- cgroups ---------------------------------------------------------------

cgroup_fs=/sys/fs/cgroup
cgroup_v1_subsystems="cpu cpuacct memory devices pids freezer"

# "v2" when /sys/fs/cgroup is a cgroup2 mount (only a cgroup2 root has
# cgroup.controllers), else "v1".
cgroup_mode() {
  if [ -f "$cgroup_fs/cgroup.controllers" ]; then
    echo v2
  else
    echo v1
  fi
}

# Sets cg_plan to "<subsystem> <dir>" lines, one for every hierarchy the
# container (or, with an empty id, the server's parent cgroup) uses. Only
# names with the prefix. Builtins only.
cgroup_plan() {
  _cg_id=$1
  _cg_leaf=warden-$prefix${_cg_id:+/$_cg_id}
  if [ -f "$cgroup_fs/cgroup.controllers" ]; then # v2, see cgroup_mode
    cg_plan="unified $cgroup_fs/$_cg_leaf"
    return 0
  fi
  cg_plan=
  for _cg_s in $cgroup_v1_subsystems; do
    # A co-mounted hierarchy (cpu,cpuacct behind symlinks) is listed under
    # each name; making and removing it twice is harmless.
    [ -f "$cgroup_fs/$_cg_s/cgroup.procs" ] || continue
    cg_plan="$cg_plan${cg_plan:+
}$_cg_s $cgroup_fs/$_cg_s/$_cg_leaf"
  done
}

# Prints cgroup_plan's lines.
cgroup_dirs() {
  cgroup_plan "$1"
  [ -z "$cg_plan" ] || printf '%s\n' "$cg_plan"
}

# Sets cg_pids to the pids in a cgroup directory, space separated (empty
# when it does not exist). Builtins only: no process is started.
cgroup_read_pids() {
  cg_pids=
  [ -f "$1/cgroup.procs" ] || return 0
  { while read -r _cgp; do cg_pids="$cg_pids $_cgp"; done <"$1/cgroup.procs"; } 2>/dev/null || true
}

# Pids in a cgroup directory, one a line (nothing when it does not exist).
cgroup_pids() {
  cgroup_read_pids "$1"
  for _cgp in $cg_pids; do echo "$_cgp"; done
}

# Removes a cgroup directory and its children (deepest first), retrying
# briefly while the kernel still counts exiting tasks. Kills what is left.
cgroup_remove() {
  [ -d "$1" ] || return 0
  for _cgr_child in "$1"/*/; do
    [ -d "$_cgr_child" ] || continue
    cgroup_remove "${_cgr_child%/}" || return 1
  done
  _cgr_try=0
  while [ -d "$1" ]; do
    cgroup_read_pids "$1"
    # shellcheck disable=SC2086
    [ -z "$cg_pids" ] || kill -9 $cg_pids 2>/dev/null || true
    rmdir "$1" 2>/dev/null && return 0
    _cgr_try=$((_cgr_try + 1))
    [ "$_cgr_try" -lt 500 ] || return 1
    sleep 0.01
  done
}

# ---- network ---------------------------------------------------------------

nft_table() {
  echo "warden-$prefix"
}

nft_has_table() {
  nft list table ip "warden-$prefix" >/dev/null 2>&1
}
