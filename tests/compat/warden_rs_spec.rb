# coding: UTF-8
#
# warden's own shared examples (spec/support/examples) run against OUR
# server, `warden server --config FILE`, through the original Ruby
# warden-client. This file plays the part of warden/spec/container/linux_spec.rb:
# same `let`s and helpers (start_warden, stop_warden, restart_warden, client,
# create_client, ...), but it starts the Rust server with a YAML config
# instead of forking Warden::Server, and the depot is a plain directory
# (quota off) instead of a loop-mounted ext4 image.
#
# Environment (see run-ruby-spec.sh): WARDEN_BIN (dir holding warden and
# the helpers), WARDEN_ROOTFS, WARDEN_SCRIPTS, WARDEN_SRC,
# WARDEN_COMPAT_PREFIX (resource prefix, default "rb"),
# WARDEN_COMPAT_WORK (scratch dir), WARDEN_COMPAT_NET (pool start, a /24
# per server start is taken from it).

require_relative "spec_helper"
require "fileutils"
require "socket"
require "yaml"

module WardenRs
  def self.env(name, default = nil)
    v = ENV[name]
    v = default if v.nil? || v.empty?
    raise "#{name} is not set" if v.nil?
    v
  end

  # One /24 per server start, like warden's next_class_c.
  def self.next_pool
    @n ||= 0
    base = env("WARDEN_COMPAT_NET", "10.250.0.0").split(".").map(&:to_i)
    addr = "#{base[0]}.#{base[1]}.#{(base[2] + @n) % 256}.0"
    @n += 1
    addr
  end
end

describe "warden-rs", :needs_root => true do
  include Helpers::Drain

  attr_reader :container_rootfs_path, :work_path

  let(:unix_domain_path) { File.join(work_path, "warden.sock") }
  let(:container_klass) { "Warden::Container::Linux" }
  let(:container_depot_path) { File.join(work_path, "containers") }
  let(:have_uid_support) { true }
  let(:netmask) { Warden::Network::Netmask.new(255, 255, 255, 252) }
  let(:allow_networks) { [] }
  let(:allow_host_access) { false }
  let(:mtu) { 1500 }
  let(:job_output_limit) { 100 * 1024 }
  let(:server_pidfile) { nil }
  let(:syslog_socket) { nil }
  let(:lang) { ENV['LANG'] }
  let(:dns_servers) { [] }

  before(:all) do
    @work_path = WardenRs.env("WARDEN_COMPAT_WORK")
    @container_rootfs_path = WardenRs.env("WARDEN_ROOTFS")
  end

  before do
    FileUtils.mkdir_p(work_path)
    raise "#{container_rootfs_path} does not exist" unless File.directory?(container_rootfs_path)
    FileUtils.mkdir_p(container_depot_path)
    start_warden
  end

  after do
    stop_warden
    # Destroy all artifacts, as warden's spec does with clear.sh.
    system({ "prefix" => prefix, "depot_path" => container_depot_path },
           File.join(WardenRs.env("WARDEN_SCRIPTS"), "clear.sh"), [:out, :err] => File::NULL)
    FileUtils.rm_rf(container_depot_path)
  end

  def prefix
    WardenRs.env("WARDEN_COMPAT_PREFIX", "rb")
  end

  def execute(command)
    `#{command}`.tap do
      expect($?).to be_success
    end
  end

  def create_client
    client = ::Warden::Client.new(unix_domain_path)
    client.connect
    client
  end

  def config_file
    File.join(work_path, "warden.yml")
  end

  def write_config
    cfg = {
      "server" => {
        "unix_domain_path" => unix_domain_path,
        "container_rootfs_path" => container_rootfs_path,
        "container_depot_path" => container_depot_path,
        "container_grace_time" => 5,
        "job_output_limit" => job_output_limit,
        "pidfile" => server_pidfile,
        "syslog_socket" => syslog_socket,
        "resource_prefix" => prefix,
        "scripts_path" => WardenRs.env("WARDEN_SCRIPTS"),
        "bin_path" => WardenRs.env("WARDEN_BIN"),
        "quota" => { "disk_quota_enabled" => false },
      },
      "network" => {
        "pool_start_address" => @start_address,
        "pool_size" => 64,
        "mtu" => mtu,
        "allow_networks" => allow_networks,
        "allow_host_access" => allow_host_access,
        "dns_servers" => dns_servers,
      },
      "port" => { "pool_start_port" => 64000, "pool_size" => 1000 },
      "logging" => { "level" => "debug", "file" => File.join(work_path, "warden.log") },
    }
    File.write(config_file, YAML.dump(cfg))
  end

  def start_warden
    FileUtils.rm_f(unix_domain_path)
    @start_address = WardenRs.next_pool
    write_config

    env = { "LANG" => lang }
    @pid = Process.spawn(env, File.join(WardenRs.env("WARDEN_BIN"), "warden"), "server", "--config", config_file,
                         :pgroup => true, :in => File::NULL,
                         [:out, :err] => [File.join(work_path, "warden.out"), "a"])

    deadline = Time.now + 30
    loop do
      begin
        UNIXSocket.new(unix_domain_path).close
        break
      rescue Errno::ENOENT, Errno::ECONNREFUSED
      end

      if Process.waitpid(@pid, Process::WNOHANG)
        STDERR.puts "warden server exited early (see #{work_path}/warden.out); aborting"
        exit 1
      end
      raise "warden server did not listen within 30s" if Time.now > deadline

      sleep 0.01
    end
  end

  def stop_warden(signal = "USR2")
    Process.kill(signal, -@pid) rescue Errno::ESRCH
    Process.waitpid(@pid) rescue Errno::ECHILD
  end

  def restart_warden(signal = "USR2")
    stop_warden(signal)
    start_warden
  end

  def client
    @client ||= create_client
  end

  def reset_client
    @client = nil
  end

  it_should_behave_like "lifecycle"
  it_should_behave_like "running commands"
  it_should_behave_like "info"
  it_should_behave_like "file transfer"
  it_should_behave_like "drain"
  it_should_behave_like "snapshotting_common"
  it_should_behave_like "snapshotting_net_in"
  it_should_behave_like "snapshotting_net_out"
  it_should_behave_like "writing_pidfile"
end
