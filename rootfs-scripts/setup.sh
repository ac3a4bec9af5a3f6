#!/bin/sh
# setup.sh: run once when the server starts (safe to re-run).
#
# env: prefix             resource prefix P ([a-z0-9]{1,6})
#      pool_network       container pool, CIDR (e.g. 10.254.0.0/24)
#      allow_host_access  true|false (default false)
#      allow_networks     space separated CIDRs containers may always reach
#      deny_networks      space separated CIDRs dropped (no reply) for
#                         what neither net_out nor allow_networks allow
#
# Creates or refreshes:
#   - nft table `ip warden-P`:
#       map net_in      tcp host port -> container ip . container port (net.sh in)
#       set sources     host veth name . container ip (net.sh setup): the one
#                       source address each container veth may send from
#       sets out_all, out_l4, out_icmp (and out_all_log, out_l4_log,
#                       out_icmp_log): net_out rules as elements keyed by
#                       the host veth name (the controller's netout module):
#                       out_all   iface . daddr range
#                       out_l4    iface . daddr range . tcp|udp . dport range
#                       out_icmp  iface . daddr range . type range . code range
#                       A *_log set holds the elements of rules with log;
#                       they are in the plain set too.
#       prerouting_raw (filter, priority raw: before conntrack and NAT):
#                       from a container veth (iifname P-*), a packet whose
#                       iifname . saddr is not in @sources (a forged source)
#                       or whose daddr is in 127.0.0.0/8 is dropped
#       prerouting/output (nat): DNAT host ports to containers for packets to
#                       any local address (output covers clients on the host,
#                       including 127.0.0.1)
#       postrouting (nat): masquerade pool traffic leaving the pool, and
#                       loopback-sourced DNAT traffic going to a container
#       forward (filter): traffic from a container (iifname P-*) is checked
#                       for its source again (@sources) and dropped when it
#                       goes to 127.0.0.0/8; it is then allowed when it
#                       belongs to an established flow, matches one of
#                       its net_out elements (new flows of a *_log element
#                       are logged first, prefix "warden-P-out ", the
#                       kernel adds IN=<host veth>), or goes to
#                       allow_networks; what goes to deny_networks is
#                       dropped, everything else rejected, so containers
#                       cannot reach each other unless allowed. The rules
#                       are the same for every container: a container adds
#                       set elements, never rules or chains
#       input (filter): traffic from a container veth is checked for its
#                       source (@sources); to 127.0.0.0/8 only the replies of
#                       host-side 127.0.0.1:HOST_PORT net_in connections
#                       (masqueraded, so de-NATed back to 127.0.0.1) pass;
#                       with allow_host_access=false, new connections from
#                       containers to the host are rejected
#     Containers are matched by interface, never by source address alone.
#     The base chains are rebuilt on each run; the maps and sets are kept,
#     so containers survive a server restart. (The per-container chains
#     c-<id> and the verdict map `containers` of earlier versions are
#     removed by the server's start-up sweep.)
#   - net.ipv4.ip_forward=1
#   - parent cgroups warden-P in every hierarchy the containers use
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=setup.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/skeleton/lib/common.sh"

prefix=${prefix:-}
pool_network=${pool_network:-}
allow_host_access=${allow_host_access:-false}
allow_networks=${allow_networks:-}
deny_networks=${deny_networks:-}

is_prefix "$prefix" || die "bad prefix (want [a-z0-9]{1,6}): $prefix"
is_cidr "$pool_network" || die "bad pool_network (want a.b.c.d/len): $pool_network"
case "$allow_host_access" in
  true | false) ;;
  *) die "bad allow_host_access (want true or false): $allow_host_access" ;;
esac
allowed=
for n in $allow_networks; do
  is_cidr "$n" || is_ipv4 "$n" || die "bad allow_networks entry: $n"
  allowed="${allowed:+$allowed, }$n"
done
denied=
for n in $deny_networks; do
  is_cidr "$n" || is_ipv4 "$n" || die "bad deny_networks entry: $n"
  denied="${denied:+$denied, }$n"
done

command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"

table=$(nft_table)

# ---- nftables (one atomic transaction) ---------------------------------------
{
  echo "add table ip $table"
  echo "add map ip $table net_in { type inet_service : ipv4_addr . inet_service; }"
  echo "add set ip $table sources { type ifname . ipv4_addr; }"
  for l in "" _log; do
    echo "add set ip $table out_all$l { type ifname . ipv4_addr; flags interval; }"
    echo "add set ip $table out_l4$l { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }"
    echo "add set ip $table out_icmp$l { type ifname . ipv4_addr . icmp_type . icmp_code; flags interval; }"
  done
  echo "add chain ip $table prerouting_raw { type filter hook prerouting priority raw; policy accept; }"
  echo "add chain ip $table prerouting { type nat hook prerouting priority dstnat; policy accept; }"
  echo "add chain ip $table output { type nat hook output priority -100; policy accept; }"
  echo "add chain ip $table postrouting { type nat hook postrouting priority srcnat; policy accept; }"
  echo "add chain ip $table forward { type filter hook forward priority filter; policy accept; }"
  echo "add chain ip $table input { type filter hook input priority filter; policy accept; }"
  for c in prerouting_raw prerouting output postrouting forward input; do
    echo "flush chain ip $table $c"
  done
  # Anti-spoofing, before conntrack sees the packet (no state is made for a
  # forged one) and before NAT: each container veth sends from its
  # container's address only, and never to 127.0.0.0/8 (route_localnet is
  # on for the host veths, see net.sh; this rule is what makes it safe).
  echo "add rule ip $table prerouting_raw iifname != \"$prefix-*\" accept"
  echo "add rule ip $table prerouting_raw iifname . ip saddr != @sources drop"
  echo "add rule ip $table prerouting_raw ip daddr 127.0.0.0/8 drop"
  echo "add rule ip $table prerouting fib daddr type local dnat ip to tcp dport map @net_in"
  echo "add rule ip $table output fib daddr type local dnat ip to tcp dport map @net_in"
  echo "add rule ip $table postrouting ip saddr $pool_network ip daddr != $pool_network masquerade"
  echo "add rule ip $table postrouting ip saddr 127.0.0.0/8 oifname \"$prefix-*\" masquerade"
  echo "add rule ip $table forward iifname != \"$prefix-*\" accept"
  echo "add rule ip $table forward iifname . ip saddr != @sources drop"
  echo "add rule ip $table forward ip daddr 127.0.0.0/8 drop"
  echo "add rule ip $table forward ct state established,related accept"
  # net_out: logged (new flows only, as warden logged), then allowed.
  log="log prefix \"warden-$prefix-out \""
  echo "add rule ip $table forward ct state new iifname . ip daddr @out_all_log $log"
  echo "add rule ip $table forward ct state new meta l4proto { tcp, udp } iifname . ip daddr . meta l4proto . th dport @out_l4_log $log"
  echo "add rule ip $table forward ct state new meta l4proto icmp iifname . ip daddr . icmp type . icmp code @out_icmp_log $log"
  echo "add rule ip $table forward iifname . ip daddr @out_all accept"
  echo "add rule ip $table forward meta l4proto { tcp, udp } iifname . ip daddr . meta l4proto . th dport @out_l4 accept"
  echo "add rule ip $table forward meta l4proto icmp iifname . ip daddr . icmp type . icmp code @out_icmp accept"
  [ -z "$allowed" ] || echo "add rule ip $table forward ip daddr { $allowed } accept"
  [ -z "$denied" ] || echo "add rule ip $table forward ip daddr { $denied } drop"
  echo "add rule ip $table forward reject with icmp type admin-prohibited"
  echo "add rule ip $table input iifname != \"$prefix-*\" accept"
  echo "add rule ip $table input iifname . ip saddr != @sources drop"
  # Replies of a host client's 127.0.0.1:HOST_PORT connection arrive from
  # the container addressed to 127.0.0.1 (the masquerade undone); nothing
  # else from a container may.
  echo "add rule ip $table input ip daddr 127.0.0.0/8 ct direction reply ct status snat accept"
  echo "add rule ip $table input ip daddr 127.0.0.0/8 drop"
  if [ "$allow_host_access" != true ]; then
    echo "add rule ip $table input ct state established,related accept"
    echo "add rule ip $table input reject with icmp type admin-prohibited"
  fi
} | nft -f - || die "creating nft table ip $table failed"

echo 1 >/proc/sys/net/ipv4/ip_forward || die "enabling net.ipv4.ip_forward failed"

# ---- parent cgroups ------------------------------------------------------------
if [ "$(cgroup_mode)" = v2 ]; then
  controllers=$(cat "$cgroup_fs/cgroup.subtree_control")
  for c in cpu memory pids; do
    case " $controllers " in
      *" $c "*) ;;
      *) die "cgroup v2 controller $c is not enabled in $cgroup_fs/cgroup.subtree_control" ;;
    esac
  done
fi
cgroup_dirs "" | while read -r subsystem dir; do
  mkdir -p "$dir" || die "creating cgroup $dir failed"
  if [ "$subsystem" = unified ]; then
    echo "+cpu +memory +pids" >"$dir/cgroup.subtree_control" ||
      die "enabling controllers in $dir/cgroup.subtree_control failed"
  fi
done
