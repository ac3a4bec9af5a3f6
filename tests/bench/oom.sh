#!/usr/bin/env bash
# Bench section "oom": OOM event to waiter exit, for our `oom CGROUP_DIR` and
# warden's C oom (built from WARDEN_SRC; absent without it), interleaved run
# by run on cgroup v1 memory cgroups; median and p90.
#
# Each run: a fresh cgroup warden-bench-oom-<pid>-<i> with a 32 MiB limit,
# the waiter armed on it, and the harness's own eventfd registered on the
# same memory.oom_control (a thread blocks reading it); then a process in
# the cgroup allocates 64 KiB at a time, writing a CLOCK_MONOTONIC stamp to
# a file after each step, until the kernel kills it.
# - "OOM event -> waiter exits": the waiter's exit (waitpid) minus the moment
#   the harness's eventfd fired: both are woken by the same notification,
#   so this is the waiter's own latency (wake-up, checks, exit).
# - "last allocation -> waiter exits": the exit minus the last stamp: an
#   upper bound that also holds the kernel's reclaim before it declares
#   the OOM (tens of ms on a loaded machine), alike for both.
#
# Env: WARDEN_BIN_DIR (oom). Optional: WARDEN_SRC, OOM_BENCH_RUNS (default
# 30 each). Target (not asserted): median and p90 <= C oom's. Needs ruby
# (harness) and root.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}"
BENCH_SECTION=oom
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
mem=/sys/fs/cgroup/memory
if [ ! -f "$mem/memory.oom_control" ]; then
  absent "oom event -> waiter exit" "no cgroup v1 memory hierarchy at $mem"
  exit 0
fi
if ! command -v ruby >/dev/null; then
  absent "oom event -> waiter exit" "ruby not installed (the harness)"
  exit 0
fi
work=$(mktemp -d /tmp/warden-bench-oom.XXXXXX)
trap 'rm -rf "$work"' EXIT

CNOTE="WARDEN_SRC unset"
COOM=
if [ -n "${WARDEN_SRC:-}" ]; then
  s=$work/csrc
  mkdir -p "$s"
  for d in "$WARDEN_SRC/warden/src/oom" "$WARDEN_SRC/src/oom"; do
    [ -f "$d/oom.c" ] && { cp -a "$d/." "$s/"; break; }
  done
  [ -f "$s/oom.c" ] || git -C "$WARDEN_SRC" archive HEAD warden/src/oom 2>/dev/null |
    tar -x --strip-components=3 -C "$s" 2>/dev/null || true
  if [ ! -f "$s/oom.c" ]; then
    CNOTE="no warden/src/oom in WARDEN_SRC=$WARDEN_SRC"
  elif make -C "$s" OPTIMIZATION=-O2 DEBUG= oom >"$work/c.log" 2>&1; then
    COOM=$s/oom
  else
    CNOTE="building warden's C oom failed: $(tail -n 3 "$work/c.log" | tr '\n' ' ')"
  fi
fi

waiters=("oom=$WARDEN_BIN_DIR/oom")
[ -z "$COOM" ] || waiters+=("C-oom=$COOM")
ruby - "$mem" "${OOM_BENCH_RUNS:-30}" "$work" "${waiters[@]}" <<'RUBY'
mem, runs, work = ARGV[0], ARGV[1].to_i, ARGV[2]
waiters = ARGV[3..].map { |a| a.split("=", 2) }
def now = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)

def rm_cgroup(dir)
  return unless File.directory?(dir)
  100.times do
    (File.read("#{dir}/cgroup.procs").split.map(&:to_i) rescue []).each do |p|
      Process.kill(:KILL, p) rescue nil
    end
    begin
      Dir.rmdir(dir)
      return
    rescue SystemCallError
      sleep 0.02
    end
  end
end

made = []
at_exit { made.each { |d| rm_cgroup(d) } }
stamp = "#{work}/stamp"

def new_cgroup(mem, made, tag)
  cg = "#{mem}/warden-bench-oom-#{Process.pid}-#{tag}"
  Dir.mkdir(cg)
  made << cg
  File.write("#{cg}/memory.limit_in_bytes", (32 << 20).to_s)
  if File.exist?("#{cg}/memory.memsw.limit_in_bytes")
    File.write("#{cg}/memory.memsw.limit_in_bytes", (32 << 20).to_s)
  end
  cg
end

def start_waiter(bin, cg)
  pid = Process.spawn(bin, cg, err: "/dev/null", out: "/dev/null")
  # Armed once it holds its eventfd.
  until Dir.glob("/proc/#{pid}/fd/*").any? { |f| (File.readlink(f) rescue "").include?("eventfd") }
    sleep 0.0005
  end
  pid
end

# eventfd(0, EFD_CLOEXEC) by number (x86_64 eventfd2 = 290): Ruby has no
# wrapper. Registered like the waiters do (cgroup v1 event_control).
def harness_eventfd(cg)
  fd = syscall(290, 0, 0x80000)
  ctl = File.open("#{cg}/memory.oom_control")
  File.write("#{cg}/cgroup.event_control", "#{fd} #{ctl.fileno}")
  [IO.for_fd(fd, autoclose: true), ctl]
end

out = waiters.to_h { |name, _| [name, File.open("#{work}/#{name}", "w")] }
upper = waiters.to_h { |name, _| [name, File.open("#{work}/#{name}.upper", "w")] }
runs.times do |i|
  order = i.even? ? waiters : waiters.reverse
  order.each do |name, bin|
    cg = new_cgroup(mem, made, "#{name}#{i}")
    w = start_waiter(bin, cg)
    efd, ctl = harness_eventfd(cg)
    seen = Thread.new { efd.sysread(8); now }
    File.binwrite(stamp, [0].pack("Q"))
    hog = fork do
      File.write("#{cg}/cgroup.procs", Process.pid.to_s)
      f = File.open(stamp, "r+b")
      keep = []
      loop do
        keep << ("x" * 65536)
        f.syswrite([now].pack("Q"))
        f.sysseek(0)
      end
    end
    Process.wait(w)
    t = now
    code = $?.exitstatus
    Process.wait(hog)
    last = File.binread(stamp, 8).unpack1("Q")
    raise "#{name} exited #{code.inspect} in run #{i}" unless code == 0
    event = seen.value
    efd.close
    ctl.close
    out[name].puts(format("%.3f", (t - event) / 1e6))
    upper[name].puts(format("%.3f", (t - last) / 1e6))
    rm_cgroup(cg)
    made.delete(cg)
  end
end
out.each_value(&:close)
upper.each_value(&:close)
RUBY
echo "(a) OOM event (the harness's eventfd fired) -> waiter exits, ms (${OOM_BENCH_RUNS:-30} runs each, interleaved):"
row "oom event -> oom exits" ms <"$work/oom"
if [ -n "$COOM" ]; then
  row "oom event -> C oom exits" ms <"$work/C-oom"
fi
echo "    upper bound, last allocation -> waiter exits (holds the kernel's reclaim):"
row "last allocation -> oom exits" ms <"$work/oom.upper"
[ -z "$COOM" ] || row "last allocation -> C oom exits" ms <"$work/C-oom.upper"
if [ -n "$COOM" ]; then
  read -r om op _ <<<"$(stats <"$work/oom")"
  read -r cm cp _ <<<"$(stats <"$work/C-oom")"
  ratio "oom median / C oom median" "$om" "$cm" "<=" 1
  ratio "oom p90 / C oom p90" "$op" "$cp" "<=" 1
else
  absent "oom event -> C oom exits" "$CNOTE"
fi
