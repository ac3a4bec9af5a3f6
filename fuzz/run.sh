#!/usr/bin/env bash
# Builds the fuzz targets with cargo-fuzz (libFuzzer) and runs each for
# SECONDS seconds: `fuzz/run.sh SECONDS [TARGET...]` (default: every target).
#
# Per target:
#   fuzz/seeds/T        regenerated from code at each start (the target's init)
#   fuzz/corpus/T       what libFuzzer keeps (grows across runs; not in git)
#   fuzz/regressions/T  inputs that once crashed T (in git; replayed by
#                       `cargo test` in the crate that owns the decoder, not
#                       fed to libFuzzer: big ones would slow every run)
# A crash (panic, failed property, allocation above the cap, timeout, leak
# of memory past -rss_limit_mb) is copied into fuzz/regressions/T/ and the
# script exits 1 after the remaining targets ran.
#
# Prints per target: executions, executions per second, coverage (edges,
# features), corpus size; and the build time.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(warden_frame warden_config wsh_proto iomux_proto)
fi

# Nightly where installed; else stable, which builds these targets too since
# they use no sanitizer (coverage instrumentation needs only stable -C flags).
toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  toolchain=stable
  if rustup run nightly rustc --version >/dev/null 2>&1; then toolchain=nightly; fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (about 1 min of CPU, once per machine)"
  t0=$(date +%s)
  cargo install cargo-fuzz --locked --quiet
  echo "fuzz: cargo-fuzz installed in $(($(date +%s) - t0)) s"
fi

# -s none: no sanitizer (the code under test is safe Rust; ASan would halve
# the speed for nothing); -a: debug assertions and overflow checks on;
# 16 codegen units: the build takes half the time (cargo-fuzz defaults to 1),
# the targets run about as fast.
flags=(-s none -a --codegen-units 16)
t0=$(date +%s)
cargo +"$toolchain" fuzz build "${flags[@]}" "${targets[@]:0:1}" >/dev/null 2>build.log || {
  cat build.log >&2
  exit 2
}
for t in "${targets[@]:1}"; do
  cargo +"$toolchain" fuzz build "${flags[@]}" "$t" >/dev/null 2>>build.log || {
    cat build.log >&2
    exit 2
  }
done
echo "fuzz: built ${#targets[@]} targets with $toolchain in $(($(date +%s) - t0)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t" "regressions/$t"
  rm -f "seeds/$t"/seed-*
  log="artifacts/$t/last-run.log"
  stamp="artifacts/$t/.started"
  touch "$stamp"
  set +e
  FUZZ_SEED_DIR="seeds/$t" cargo +"$toolchain" fuzz run "${flags[@]}" "$t" \
    "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 \2 \3/p' <<<"$last")
  read -r edges feats corp <<<"${cov:-? ? ?}"
  summary+=("$(printf '%-14s %10s execs %7s/s  cov %5s  ft %6s  corpus %5s' "$t" "${execs:-?}" "${rate:-?}" "$edges" "$feats" "$corp")")
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    find "artifacts/$t" -maxdepth 1 -newer "$stamp" \
      \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) |
      while read -r a; do
        cp "$a" "regressions/$t/"
        echo "fuzz: $t: saved $(basename "$a") in fuzz/regressions/$t/" >&2
      done
    grep -E -B2 -A12 "panicked|ERROR: libFuzzer|wsys::alloc" "$log" | head -40 >&2 || tail -30 "$log" >&2
  fi
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs saved in fuzz/regressions/; replay: cargo test)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs} s each: no crash"
