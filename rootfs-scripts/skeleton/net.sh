#!/bin/sh
# net.sh setup|teardown|in|rate: the host side of one container's network.
#
#   setup     veth pair network_host_iface/network_container_iface, host
#             address network_host_ip/len, mtu, up; on the host end
#             rp_filter=1 (strict), IPv6 off, route_localnet=1 (needed for
#             host clients of 127.0.0.1:HOST_PORT, see below); this
#             container's element "host veth" . container ip in the
#             `sources` set (the only source address accepted from this
#             veth). Idempotent: re-run on a running container it keeps
#             the pair (the server does this after a restart).
#             env PID (hook-parent-after-clone.sh, run by wshd during
#             start.sh): the container end is made in (or moved to) the
#             network namespace of PID, the container's init, and set up
#             there: lo up, address network_container_ip/len, mtu, up,
#             default route via network_host_ip.
#   teardown  removes this container's net_in elements (found by its ip),
#             its sources element, its net_out elements (every element of
#             the out_* sets keyed by its host veth), the ifb device of
#             `rate` and the veth pair.
#             Idempotent: missing pieces are skipped.
#   in        env HOST_PORT, CONTAINER_PORT: DNAT tcp HOST_PORT on every
#             host address to network_container_ip:CONTAINER_PORT.
#   rate      env RATE (bytes/s), BURST (bytes): warden's limit_bandwidth.
#             A token bucket (tc tbf, latency 25 ms) on the host veth's
#             egress shapes what the container receives; the host veth's
#             ingress is redirected (u32 + mirred) to the ifb device
#             P-N-2 (network_host_iface with -2 for -0), whose tbf shapes
#             what the container sends. Re-run it to change the limit.
#             (A burst below the MTU holds back full-size packets, as in
#             warden.)
#
# net_out rules are not added here: the controller adds them as elements
# of the out_* sets (controller/src/netout/; it splits overlapping
# rules into disjoint elements, which the kernel requires).
#
# All rules live in the server's table `ip warden-<prefix>` made by the
# top-level setup.sh (see there for the layout). Per-container cost is
# set and map elements only (one sources element, one net_in element per
# port, the net_out elements), never a rule or a chain, so it stays flat
# with the number of containers.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=net.sh
case "$0" in
  */*) cd "${0%/*}" ;;
esac
. ./lib/common.sh
load_config

table=warden-$prefix # nft_table
ifb_iface=${network_host_iface%-0}-2

# (No separate check that the table exists: every nft command below fails
# with a message naming the table, and teardown skips a missing table.)

iface_exists() {
  ip link show dev "$1" >/dev/null 2>&1
}

is_port() {
  is_uint "$1" && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

setup() {
  pid=${PID:-}
  peer_ns=
  if [ -n "$pid" ]; then
    is_uint "$pid" && [ -d "/proc/$pid" ] || die "PID is not a running process: $pid"
    peer_ns="netns $pid"
  fi
  # Fast path for a new container: one `ip -batch` makes the pair (with
  # PID, the container end directly in PID's network namespace: moving a
  # veth there afterwards costs ~20 ms of RCU waits, making it there ~1 ms)
  # and configures the host end. It stops at the first error (the pair
  # exists already, say), and the careful path below then does each step.
  if ! ip -batch - >/dev/null 2>&1 <<EOF
link add name $network_host_iface mtu $container_iface_mtu type veth peer name $network_container_iface mtu $container_iface_mtu $peer_ns
addr replace $network_host_ip/$network_prefix_len dev $network_host_iface
link set $network_host_iface up
EOF
  then
    setup_careful
  fi
  # With PID, the container's side too, from here (one ip inside its
  # network namespace instead of four programs in the container): lo up,
  # address, mtu, default route via the host end.
  if [ -n "$pid" ]; then
    nsenter -t "$pid" -n ip -batch - <<EOF ||
link set lo up
link set $network_container_iface mtu $container_iface_mtu up
addr add $network_container_ip/$network_prefix_len dev $network_container_iface
route add default via $network_host_ip dev $network_container_iface
EOF
      die "configuring $network_container_iface in the network namespace of $pid failed"
  fi
  # The host end (shell builtins, no process):
  # - rp_filter=1: strict reverse-path check (the kernel uses the larger of
  #   conf/all and this value, so a host with all=2 gets loose; the
  #   `sources` set in nft is the check that holds either way);
  # - IPv6 off: the table is IPv4 only, and a host end with a link-local
  #   address would let the container reach host services on [::] around
  #   every rule here;
  # - route_localnet=1: a host client's connection to 127.0.0.1:HOST_PORT
  #   is DNATed in the output hook and leaves through this veth still with
  #   source 127.0.0.1 (masqueraded only in postrouting, after routing),
  #   and its replies come back de-NATed to 127.0.0.1; without it the
  #   kernel refuses the first (EINVAL) and drops the second as martian.
  #   What it would also let in, a container sending to 127.0.0.0/8 through
  #   this veth, the server's table drops (prerouting_raw, input, forward).
  conf=/proc/sys/net/ipv4/conf/$network_host_iface
  echo 1 >"$conf/rp_filter" || die "setting rp_filter on $network_host_iface failed"
  if [ -d "/proc/sys/net/ipv6/conf/$network_host_iface" ]; then
    echo 1 >"/proc/sys/net/ipv6/conf/$network_host_iface/disable_ipv6" ||
      die "disabling IPv6 on $network_host_iface failed"
  fi
  echo 1 >"$conf/route_localnet" || die "enabling route_localnet on $network_host_iface failed"

  # The veth's one allowed source address.
  nft add element ip "$table" sources "{ \"$network_host_iface\" . $network_container_ip }" ||
    die "adding $network_host_iface to the sources set of table $table failed (did the server's setup.sh run?)"
}

# net.sh setup step by step (idempotent): keeps what exists.
setup_careful() {
  # Idempotent and non-destructive: the server re-runs it for running
  # containers after a restart, so an existing pair (its container end maybe
  # inside the container) is kept.
  if ! iface_exists "$network_host_iface"; then
    if iface_exists "$network_container_iface"; then
      ip link del "$network_container_iface" || die "removing stale interface $network_container_iface failed"
    fi
    ip link add name "$network_host_iface" mtu "$container_iface_mtu" type veth \
      peer name "$network_container_iface" mtu "$container_iface_mtu" ||
      die "creating veth pair $network_host_iface/$network_container_iface failed"
  fi
  ip link set "$network_host_iface" mtu "$container_iface_mtu" ||
    die "setting mtu $container_iface_mtu on $network_host_iface failed"
  ip addr replace "$network_host_ip/$network_prefix_len" dev "$network_host_iface" ||
    die "adding $network_host_ip/$network_prefix_len to $network_host_iface failed"
  ip link set "$network_host_iface" up || die "bringing up $network_host_iface failed"
  # A container end left in the host's namespace goes into PID's.
  if [ -n "$pid" ] && iface_exists "$network_container_iface"; then
    ip link set "$network_container_iface" netns "$pid" ||
      die "moving $network_container_iface into the network namespace of $pid failed"
  fi
}

teardown() {
  rc=0
  # The veth goes in the background while nft works (both wait for the
  # kernel). The kernel deletes the pair by itself once the container's
  # network namespace is gone (asynchronously, after wshd dies), so the
  # veth may vanish at any moment: only one that is still there is a
  # failure. /sys/class/net (this namespace's devices) is checked first,
  # without a process.
  veth_del &
  veth_pid=$!
  # The ifb device of `rate` (its qdiscs go with it; those of the host
  # veth go with the veth).
  if [ -e "/sys/class/net/$ifb_iface" ] || { [ ! -d /sys/class/net ] && iface_exists "$ifb_iface"; }; then
    ip link del "$ifb_iface" 2>/dev/null || [ ! -e "/sys/class/net/$ifb_iface" ] ||
      { warn "removing interface $ifb_iface failed"; rc=1; }
  fi
  # One listing, one awk, one transaction. net_in elements are
  # "port : ip . port", sources elements "iface" . ip, out_* elements
  # "iface" . ..., separated by commas, possibly over several lines (a
  # set's lines run from "map net_in" or "set NAME" to the first "}").
  cmds=$(nft -n list table ip "$table" 2>/dev/null | awk -v table="$table" -v ip="$network_container_ip" \
    -v iface="$network_host_iface" '
    /map net_in/ { in_map = 1 }
    in_map {
      last = index($0, "}") > 0
      gsub(/[{},]/, "\n")
      n = split($0, elems, "\n")
      for (i = 1; i <= n; i++)
        if (split(elems[i], f, " ") >= 4 && f[2] == ":" && f[3] == ip && f[4] == ".")
          ports = ports (ports == "" ? "" : ", ") f[1]
      if (last) in_map = 0
      next
    }
    /^[ \t]*set (sources|out_[a-z0-9_]+) [{]/ { in_set = 1; name = $2; next }
    in_set {
      if (!in_elems && $0 ~ /^[ \t]*}/) { in_set = 0; next }
      if (!in_elems && $0 !~ /elements = [{]/) next
      in_elems = 1
      last = index($0, "}") > 0
      sub(/.*elements = [{]/, "")
      gsub(/[{}]/, "")
      n = split($0, elems, ",")
      for (i = 1; i <= n; i++) {
        e = elems[i]
        gsub(/^[ \t]+|[ \t]+$/, "", e)
        if (index(e, "\"" iface "\" ") == 1)
          del[name] = del[name] (del[name] == "" ? "" : ", ") e
      }
      if (last) in_elems = 0
      next
    }
    END {
      if (ports != "") print "delete element ip " table " net_in { " ports " }"
      for (k in del) print "delete element ip " table " " k " { " del[k] " }"
    }')
  if [ -n "$cmds" ]; then
    printf '%s\n' "$cmds" | nft -f - || { warn "removing the nft elements of $network_host_iface from table $table failed"; rc=1; }
  fi
  wait "$veth_pid" || rc=1
  return "$rc"
}

# True when the host's veth is gone: /sys/class/net lists this network
# namespace's devices (no process needed); ip when sysfs is not there.
veth_gone() {
  if [ -d /sys/class/net ]; then
    [ ! -e "/sys/class/net/$network_host_iface" ]
  else
    ! iface_exists "$network_host_iface"
  fi
}

veth_del() {
  # env NETNS_DYING (destroy.sh, once the container's processes are
  # killed): the kernel removes the pair with the dying namespace within a
  # few ms of their exit; wait up to 0.1 s for that before deleting it here.
  if [ -n "${NETNS_DYING:-}" ]; then
    waits=0
    while ! veth_gone && [ "$waits" -lt 10 ]; do
      sleep 0.01
      waits=$((waits + 1))
    done
  fi
  tries=0
  until veth_gone; do
    err=$(ip link del "$network_host_iface" 2>&1) && return 0
    tries=$((tries + 1))
    if [ "$tries" -ge 3 ]; then
      veth_gone && return 0
      warn "removing interface $network_host_iface failed: $err"
      return 1
    fi
    sleep 0.05
  done
}

net_in() {
  host_port=${HOST_PORT:-}
  container_port=${CONTAINER_PORT:-}
  [ -n "$host_port" ] || die "Please specify HOST_PORT"
  [ -n "$container_port" ] || die "Please specify CONTAINER_PORT"
  is_port "$host_port" || die "bad HOST_PORT: $host_port"
  is_port "$container_port" || die "bad CONTAINER_PORT: $container_port"
  if ! _nft_err=$(nft add element ip "$table" net_in "{ $host_port : $network_container_ip . $container_port }" 2>&1); then
    # The usual cause, said plainly (nft's own text is three lines about
    # "File exists" with a caret under the element).
    if nft get element ip "$table" net_in "{ $host_port }" >/dev/null 2>&1; then
      die "host port $host_port is taken: a net_in already forwards it"
    fi
    die "adding net_in $host_port -> $network_container_ip:$container_port failed: ${_nft_err%%
*}"
  fi
}

rate() {
  r=${RATE:-}
  b=${BURST:-}
  [ -n "$r" ] || die "Please specify RATE"
  [ -n "$b" ] || die "Please specify BURST"
  is_uint "$r" && [ "$r" -ge 1 ] || die "bad RATE (bytes/s, at least 1): $r"
  is_uint "$b" && [ "$b" -ge 1 ] || die "bad BURST (bytes, at least 1): $b"
  iface_exists "$network_host_iface" || die "no interface $network_host_iface"
  if ! iface_exists "$ifb_iface"; then
    ip link add "$ifb_iface" type ifb || die "creating ifb device $ifb_iface failed"
  fi
  ip link set "$ifb_iface" up || die "bringing up $ifb_iface failed"
  # The ingress qdisc and its redirect are made once; the two buckets are
  # replaced in place.
  ingress=
  if ! tc qdisc show dev "$network_host_iface" ingress | grep -q ingress; then
    ingress="qdisc add dev $network_host_iface handle ffff: ingress
filter add dev $network_host_iface parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev $ifb_iface"
  fi
  tc -batch - <<EOF || die "setting rate $r B/s burst $b B on $network_host_iface/$ifb_iface failed"
qdisc replace dev $network_host_iface root tbf rate $((r * 8))bit burst $b latency 25ms
qdisc replace dev $ifb_iface root tbf rate $((r * 8))bit burst $b latency 25ms
$ingress
EOF
}

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  in) net_in ;;
  rate) rate ;;
  *) die "usage: net.sh setup|teardown|in|rate" ;;
esac
