#!/usr/bin/env bash
# Bench section "oom": OOM notification latency of `oom CGROUP_DIR` on a
# cgroup v1 memory cgroup, median and p99 of 20 runs.
#
# Each run: a fresh cgroup warden-bench-oom-<pid>-<i> with a 32 MiB limit,
# `oom` armed on it, then a process in it allocating 64 KiB at a time and
# sending a CLOCK_MONOTONIC stamp to the harness after each step. The
# kernel kills it at the failing step, so the last stamp (written to a file
# after each step) is at most one step before the OOM kill; latency = oom's
# exit (seen by waitpid) minus that stamp: an upper bound of "kernel OOM
# kill -> oom exits" that includes the kernel's reclaim attempts before it
# declares the OOM.
#
# Env: WARDEN_BIN_DIR (oom). Optional: OOM_BENCH_RUNS (default 20).
# Target (not asserted): p99 <= 1 ms. Needs ruby (harness) and root.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}"
mem=/sys/fs/cgroup/memory
if [ ! -f "$mem/memory.oom_control" ]; then
  echo "(no cgroup v1 memory hierarchy at $mem: oom latency not measured)"
  exit 0
fi
if ! command -v ruby >/dev/null; then
  echo "(ruby not installed: oom latency not measured)"
  exit 0
fi
exec ruby - "$WARDEN_BIN_DIR/oom" "$mem" "${OOM_BENCH_RUNS:-20}" <<'RUBY'
oom_bin, mem, runs = ARGV[0], ARGV[1], ARGV[2].to_i
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

alloc_to_exit = []
alloc_to_reaped = []
stamp = "/tmp/warden-bench-oom-#{Process.pid}.stamp"
at_exit { File.unlink(stamp) rescue nil }

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

def start_oom(oom_bin, cg)
  oom = Process.spawn(oom_bin, cg, err: "/dev/null")
  # Armed once oom holds its eventfd.
  until Dir.glob("/proc/#{oom}/fd/*").any? { |f| (File.readlink(f) rescue "").include?("eventfd") }
    sleep 0.0005
  end
  oom
end

runs.times do |i|
  cg = new_cgroup(mem, made, "oom#{i}")
  oom = start_oom(oom_bin, cg)
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
  reaped = Thread.new { Process.wait(hog); now }
  Process.wait(oom)
  oom_exit = now
  code = $?.exitstatus
  hog_dead = reaped.value
  last = File.binread(stamp, 8).unpack1("Q")
  raise "oom exited #{code} in run #{i}" unless code == 0
  alloc_to_exit << (oom_exit - last) / 1000.0
  alloc_to_reaped << (hog_dead - last) / 1000.0
  rm_cgroup(cg)
  made.delete(cg)

end

def stats(v)
  s = v.sort
  [s[(s.size - 1) / 2], s[[(s.size * 0.99).ceil - 1, 0].max]]
end
m, p = stats(alloc_to_exit)
printf("oom latency, %d runs (target p99 <= 1000 us):\n", runs)
printf("  last allocation before the OOM kill -> oom exits:  median %5.0f us, p99 %5.0f us\n", m, p)
printf("    (upper bound: includes the kernel's reclaim before it declares the OOM)\n")
m, p = stats(alloc_to_reaped)
printf("  same start -> the OOM victim is reaped (kernel):   median %5.0f us, p99 %5.0f us\n", m, p)
RUBY
