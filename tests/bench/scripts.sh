#!/bin/sh
# Lifecycle script timings (proposed tests/bench/scripts.sh): create, start,
# one wsh, stop -w 0 and destroy per cycle; then net.sh setup+in+teardown
# with 0 and with NFT_N other containers' entries in the nft table (F30).
# Run as root from the repository:
#   sh tests/bench/scripts.sh [BIN_DIR] [CYCLES] [NFT_N]
# BIN_DIR defaults to target/x86_64-unknown-linux-gnu/release.
# Resolution: 10 ms (/proc/uptime). Leaves nothing behind (clear.sh).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=${1:-${WARDEN_BIN_DIR:-$top/target/x86_64-unknown-linux-gnu/release}}
cycles=${2:-20}
nft_n=${3:-500}
here=${WARDEN_SCRIPTS:-$top/rootfs-scripts}
rootfs=${WARDEN_ROOTFS:-$top/build/rootfs}
prefix=bn$$
prefix=$(echo "$prefix" | cut -c1-6)
depot=$(mktemp -d /tmp/scripts-bench.XXXXXX)
cleanup() { prefix=$prefix depot_path=$depot "$here/clear.sh" || true; rm -rf "$depot"; }
trap cleanup EXIT
prefix=$prefix pool_network=10.251.0.0/16 "$here/setup.sh"

ms() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}0"; }   # ms from centiseconds

env_for() { # idx
  i=$1
  a=$((i / 64)); b=$(( (i % 64) * 4 ))
  echo "id=bench$i prefix=$prefix network_index=$i network_host_ip=10.251.$a.$((b + 1)) network_container_ip=10.251.$a.$((b + 2)) network_netmask=255.255.255.252 network_host_iface=$prefix-$i-0 network_container_iface=$prefix-$i-1 container_iface_mtu=1500 user_uid=$((20000 + i)) rootfs_path=$rootfs allow_nested_warden=false bin_dir=$bin_dir"
}

phase() { # name cmd...
  n=$1; shift
  t0=$(ms); "$@" >/dev/null; t1=$(ms)
  echo "$n $((t1 - t0))" >>"$depot/times"
}

i=0
while [ $i -lt "$cycles" ]; do
  cp=$depot/bench$i
  phase create env $(env_for $i) "$here/create.sh" "$cp"
  phase start "$cp/start.sh"
  phase wsh "$cp/bin/wsh" --socket "$cp/run/wshd.sock" true
  phase stop "$cp/stop.sh" -w 0
  phase destroy "$here/destroy.sh" "$cp"
  i=$((i + 1))
done
echo "lifecycle, $cycles cycles (ms): phase mean min max"
awk '{ s[$1] += $2; if (!($1 in mn) || $2 < mn[$1]) mn[$1] = $2; if ($2 > mx[$1]) mx[$1] = $2; c[$1]++ }
     END { for (k in s) printf "  %-8s %6.1f %5d %5d\n", k, s[k] / c[k], mn[k], mx[k] }' "$depot/times"

# F30: net.sh setup + in + teardown with 1 and with nft_n other containers' entries.
cp=$depot/netc
env $(env_for 1000) "$here/create.sh" "$cp"
net_cycle() {
  t0=$(ms)
  for k in 1 2 3 4 5 6 7 8 9 10; do
    "$cp/net.sh" setup; HOST_PORT=40000 CONTAINER_PORT=80 "$cp/net.sh" in; "$cp/net.sh" teardown
  done
  t1=$(ms)
  echo $(( (t1 - t0) / 10 ))
}
echo "net.sh setup+in+teardown (ms, mean of 10): with 0 others: $(net_cycle)"
{
  k=0
  while [ $k -lt "$nft_n" ]; do
    echo "add chain ip warden-$prefix c-other$k"
    echo "add element ip warden-$prefix containers { \"$prefix-o$k\" : jump c-other$k }"
    echo "add element ip warden-$prefix net_in { $((41000 + k)) : 10.251.200.$((k % 250 + 1)) . 80 }"
    k=$((k + 1))
  done
} | nft -f -
echo "net.sh setup+in+teardown (ms, mean of 10): with $nft_n others: $(net_cycle)"
echo "rules in table: $(nft list table ip warden-$prefix | grep -c -E 'accept|reject|dnat|masquerade') (base chains, independent of N)"
