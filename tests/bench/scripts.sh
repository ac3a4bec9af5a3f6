#!/usr/bin/env bash
# Lifecycle script timings: create, start, one wsh, stop -w 0 and destroy
# per cycle (median, mean, min, max); then net.sh setup+in+teardown with 0
# and with NFT_N other containers' entries (a sources and a net_in element
# each) in the nft table (F30).
# Run as root from the repository:
#   bash tests/bench/scripts.sh [BIN_DIR] [CYCLES] [NFT_N]
# BIN_DIR defaults to target/x86_64-unknown-linux-gnu/release;
# WARDEN_SCRIPTS overrides the scripts directory (A/B runs).
# Resolution: microseconds ($EPOCHREALTIME). Leaves nothing behind (clear.sh).
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


env_for() { # idx
  i=$1
  a=$((i / 64)); b=$(( (i % 64) * 4 ))
  echo "id=bench$i prefix=$prefix network_index=$i network_host_ip=10.251.$a.$((b + 1)) network_container_ip=10.251.$a.$((b + 2)) network_netmask=255.255.255.252 network_host_iface=$prefix-$i-0 network_container_iface=$prefix-$i-1 container_iface_mtu=1500 user_uid=$((20000 + i)) rootfs_path=$rootfs allow_nested_warden=false bin_dir=$bin_dir"
}

phase() { # name cmd...
  n=$1; shift
  local t0=${EPOCHREALTIME/./}
  "$@" >/dev/null
  local t1=${EPOCHREALTIME/./}
  echo "$n $(( (t1 - t0) / 10 ))" >>"$depot/times"   # units of 10 us
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
echo "lifecycle, $cycles cycles (ms): phase median mean min max"
for k in create start wsh stop destroy; do
  awk -v k="$k" '$1 == k { print $2 / 100 }' "$depot/times" | sort -n |
    awk -v k="$k" '{ v[NR] = $1; s += $1 }
      END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "  %-8s %7.1f %7.1f %7.1f %7.1f\n", k, m, s / NR, v[1], v[NR] }'
done

# F30: net.sh setup + in + teardown with 1 and with nft_n other containers' entries.
cp=$depot/netc
env $(env_for 1000) "$here/create.sh" "$cp"
net_cycle() {
  local t0=${EPOCHREALTIME/./}
  for k in 1 2 3 4 5 6 7 8 9 10; do
    "$cp/net.sh" setup; HOST_PORT=40000 CONTAINER_PORT=80 "$cp/net.sh" in; "$cp/net.sh" teardown
  done
  local t1=${EPOCHREALTIME/./}
  echo $(( (t1 - t0) / 10000 ))
}
echo "net.sh setup+in+teardown (ms, mean of 10): with 0 others: $(net_cycle)"
{
  k=0
  while [ $k -lt "$nft_n" ]; do
    echo "add element ip warden-$prefix sources { \"$prefix-o$k\" . 10.251.200.$((k % 250 + 1)) }"
    echo "add element ip warden-$prefix net_in { $((41000 + k)) : 10.251.200.$((k % 250 + 1)) . 80 }"
    k=$((k + 1))
  done
} | nft -f -
echo "net.sh setup+in+teardown (ms, mean of 10): with $nft_n others: $(net_cycle)"
echo "rules in table: $(nft -a list table ip warden-$prefix | grep -E '# handle [0-9]+$' | grep -c -v -E '^[[:space:]]*(table|chain|set|map) ') (base chains, independent of N)"
