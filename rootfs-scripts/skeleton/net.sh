#!/bin/sh
# net.sh setup|teardown|in|out: the host side of one container's network.
#
#   setup     veth pair network_host_iface/network_container_iface (the
#             container end is moved into wshd's netns by
#             hook-parent-after-clone.sh), host address network_host_ip/len,
#             mtu, up; route_localnet so DNAT from 127.0.0.1 works; this
#             container's nft chain c-<id> and its element in the
#             `containers` verdict map (forward filter). Idempotent: re-run
#             on a running container it keeps the pair and the chain's
#             net_out rules (the server does this after a restart).
#   teardown  removes this container's net_in elements (found by its ip),
#             its verdict-map element and chain, and the veth pair.
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
# chain, one verdict-map element and one map element per net_in port, so it
# stays flat with the number of containers.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=net.sh
cd "$(dirname "$0")"
. ./lib/common.sh
load_config

table=$(nft_table)
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
  echo 1 >"/proc/sys/net/ipv4/conf/$network_host_iface/route_localnet" ||
    die "enabling route_localnet on $network_host_iface failed"

  # One transaction: the chain (kept if it exists) and its map element.
  {
    echo "add chain ip $table $chain"
    echo "add element ip $table containers { \"$network_host_iface\" : jump $chain }"
  } | nft -f - || die "adding nft chain $chain to table $table failed (did the server's setup.sh run?)"
}

teardown() {
  rc=0
  # One listing, one transaction. net_in elements are "port : ip . port",
  # separated by commas, possibly over several lines.
  if listing=$(nft -n list table ip "$table" 2>/dev/null); then
    ports=$(printf '%s\n' "$listing" | awk '/map net_in/,/}/' | tr ',{}' '\n\n\n' |
      awk -v ip="$network_container_ip" '$2 == ":" && $3 == ip && $4 == "." { print $1 }' | paste -sd, -)
    cmds=
    [ -z "$ports" ] || cmds="delete element ip $table net_in { $ports }
"
    if printf '%s\n' "$listing" | grep -q "\"$network_host_iface\" : jump $chain\b"; then
      cmds="${cmds}delete element ip $table containers { \"$network_host_iface\" }
"
    fi
    if printf '%s\n' "$listing" | grep -q "^[[:space:]]*chain $chain {"; then
      cmds="${cmds}delete chain ip $table $chain
"
    fi
    if [ -n "$cmds" ]; then
      printf '%s' "$cmds" | nft -f - || { warn "removing nft elements and chain $chain from table $table failed"; rc=1; }
    fi
  fi
  if iface_exists "$network_host_iface"; then
    ip link del "$network_host_iface" || { warn "removing interface $network_host_iface failed"; rc=1; }
  fi
  return "$rc"
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
