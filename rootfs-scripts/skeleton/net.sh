#!/bin/sh
# net.sh setup|teardown|in|out: the host side of one container's network.
#
#   setup     veth pair network_host_iface/network_container_iface, host
#             address network_host_ip/len, mtu, up; on the host end
#             rp_filter=1 (strict), IPv6 off, route_localnet=1 (needed for
#             host clients of 127.0.0.1:HOST_PORT, see below); this
#             container's nft chain c-<id>, its element in the `containers`
#             verdict map (forward filter) and its element
#             "host veth" . container ip in the `sources` set (the only
#             source address accepted from this veth). Idempotent: re-run
#             on a running container it keeps the pair and the chain's
#             net_out rules (the server does this after a restart).
#             env PID (hook-parent-after-clone.sh, run by wshd during
#             start.sh): the container end is made in (or moved to) the
#             network namespace of PID, the container's init, and set up
#             there: lo up, address network_container_ip/len, mtu, up,
#             default route via network_host_ip.
#   teardown  removes this container's net_in elements (found by its ip),
#             its verdict-map and sources elements and chain, and the veth
#             pair.
#             Idempotent: missing pieces are skipped.
#   in        env HOST_PORT, CONTAINER_PORT: DNAT tcp HOST_PORT on every
#             host address to network_container_ip:CONTAINER_PORT.
#   out       env NETWORK (a.b.c.d, a.b.c.d/len or a.b.c.d-e.f.g.h),
#             PORTS (N or N:M), PROTOCOL (tcp|udp|icmp|all, default all),
#             ICMP_TYPE, ICMP_CODE, LOG (true|false): allow this container's
#             outbound traffic matching them (the default is deny, as in
#             warden; the server's allow_networks are always allowed).
#
# All rules live in the server's table `ip warden-<prefix>` made by the
# top-level setup.sh (see there for the layout). Per-container cost is one
# chain, one verdict-map element, one sources element and one map element
# per net_in port, so it stays flat with the number of containers.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=net.sh
case "$0" in
  */*) cd "${0%/*}" ;;
esac
. ./lib/common.sh
load_config

table=warden-$prefix # nft_table
chain=c-$id

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

  # One transaction: the chain (kept if it exists), its map element and the
  # veth's one allowed source address.
  {
    echo "add chain ip $table $chain"
    echo "add element ip $table containers { \"$network_host_iface\" : jump $chain }"
    echo "add element ip $table sources { \"$network_host_iface\" . $network_container_ip }"
  } | nft -f - || die "adding nft chain $chain to table $table failed (did the server's setup.sh run?)"
}

# net.sh setup step by step (idempotent): keeps what exists.
setup_careful() {
  # Idempotent and non-destructive: the server re-runs it for running
  # containers after a restart, so an existing pair (its container end maybe
  # inside the container) is kept, and the chain is not flushed.
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
  # One listing, one awk, one transaction. net_in elements are
  # "port : ip . port", sources elements "iface" . ip, separated by commas,
  # possibly over several lines (a set's lines run from "map net_in" or
  # "set sources" to the first "}").
  cmds=$(nft -n list table ip "$table" 2>/dev/null | awk -v table="$table" -v ip="$network_container_ip" \
    -v iface="$network_host_iface" -v chain="$chain" '
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
    /set sources/ { in_set = 1 }
    in_set {
      last = index($0, "}") > 0
      gsub(/[{},]/, "\n")
      n = split($0, elems, "\n")
      for (i = 1; i <= n; i++)
        if (split(elems[i], f, " ") == 3 && f[1] == "\"" iface "\"" && f[2] == ".")
          sources = sources (sources == "" ? "" : ", ") f[1] " . " f[3]
      if (last) in_set = 0
      next
    }
    $0 ~ ("\"" iface "\" : jump " chain "([^A-Za-z0-9_]|$)") { element = 1 }
    $0 ~ ("^[ \t]*chain " chain " [{]") { has_chain = 1 }
    END {
      if (ports != "") print "delete element ip " table " net_in { " ports " }"
      if (element) print "delete element ip " table " containers { \"" iface "\" }"
      if (sources != "") print "delete element ip " table " sources { " sources " }"
      if (has_chain) print "delete chain ip " table " " chain
    }')
  if [ -n "$cmds" ]; then
    printf '%s\n' "$cmds" | nft -f - || { warn "removing nft elements and chain $chain from table $table failed"; rc=1; }
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
  nft add element ip "$table" net_in "{ $host_port : $network_container_ip . $container_port }" ||
    die "adding net_in $host_port -> $network_container_ip:$container_port failed (port taken?)"
}

net_out() {
  network=${NETWORK:-}
  ports=${PORTS:-}
  protocol=${PROTOCOL:-all}
  icmp_type=${ICMP_TYPE:-}
  icmp_code=${ICMP_CODE:-}
  log=${LOG:-false}
  if [ "$protocol" != icmp ] && [ -z "$network" ] && [ -z "$ports" ]; then
    die "Please specify NETWORK and/or PORTS"
  fi
  match=
  case "$network" in
    '') ;;
    *-*)
      is_ipv4 "${network%-*}" && is_ipv4 "${network#*-}" || die "bad NETWORK range: $network"
      match="ip daddr $network"
      ;;
    */*)
      is_cidr "$network" || die "bad NETWORK: $network"
      match="ip daddr $network"
      ;;
    *)
      is_ipv4 "$network" || die "bad NETWORK: $network"
      match="ip daddr $network"
      ;;
  esac
  case "$protocol" in
    tcp | udp)
      if [ -n "$ports" ]; then
        case "$ports" in
          *:*)
            is_port "${ports%:*}" && is_port "${ports#*:}" && [ "${ports%:*}" -le "${ports#*:}" ] ||
              die "bad PORTS range: $ports"
            match="$match $protocol dport ${ports%:*}-${ports#*:}"
            ;;
          *)
            is_port "$ports" || die "bad PORTS: $ports"
            match="$match $protocol dport $ports"
            ;;
        esac
      else
        match="$match ip protocol $protocol"
      fi
      ;;
    icmp)
      [ -z "$ports" ] || die "PORTS do not apply to icmp"
      if [ -n "$icmp_type" ]; then
        is_uint "$icmp_type" && [ "$icmp_type" -le 255 ] || die "bad ICMP_TYPE: $icmp_type"
        match="$match icmp type $icmp_type"
        if [ -n "$icmp_code" ]; then
          is_uint "$icmp_code" && [ "$icmp_code" -le 255 ] || die "bad ICMP_CODE: $icmp_code"
          match="$match icmp code $icmp_code"
        fi
      else
        match="$match ip protocol icmp"
      fi
      ;;
    all)
      [ -z "$ports" ] || die "PORTS need PROTOCOL tcp or udp"
      ;;
    *) die "bad PROTOCOL (want tcp, udp, icmp or all): $protocol" ;;
  esac
  verdict=accept
  [ "$log" != true ] || verdict="log prefix \"warden-$id \" accept"
  # shellcheck disable=SC2086
  nft insert rule ip "$table" "$chain" $match $verdict || die "adding net_out rule to $chain failed"
}

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  in) net_in ;;
  out) net_out ;;
  *) die "usage: net.sh setup|teardown|in|out" ;;
esac
