# coding: UTF-8
#
# Stand-in for warden/spec/spec_helper.rb: loads warden's RSpec support files
# (custom matchers, helpers, shared examples) from a warden checkout
# ($WARDEN_SRC, default /work/ref/warden) without copying them, with the
# original warden-protocol and warden-client gems on the load path (set by
# run-ruby-spec.sh). Nothing of warden's server is loaded except
# warden/network (Warden::Network::Address, used by the spec helpers).

require "rspec"
require "rspec/eventually" # shim/rspec/eventually.rb unless the gem exists
require "tempfile"
require "timeout"
require "tmpdir"
require "fiber"
require "eventmachine"
require "warden/protocol"
require "warden/client"
require "warden/network"
require "yajl"

WARDEN_SRC = ENV.fetch("WARDEN_SRC", "/work/ref/warden")
support = File.join(WARDEN_SRC, "warden", "spec", "support")
raise "#{support} not found (set WARDEN_SRC to a warden checkout)" unless File.directory?(support)
Dir[File.join(support, "**", "*.rb")].sort.each { |f| require f }

def em(options = {})
  raise "no block given" unless block_given?
  timeout = options[:timeout] ||= 1.0

  ::EM.run {
    quantum = 0.005
    ::EM.set_quantum(quantum * 1000)
    ::EM.set_heartbeat_interval(quantum)
    ::EM.add_timer(timeout) { raise "timeout" }
    yield
  }
end

def em_fibered(options = {}, &blk)
  em(options) do
    Fiber.new do
      blk.call
    end.resume
  end
end

def done
  raise "reactor not running" if !::EM.reactor_running?

  ::EM.next_tick {
    expect(:done).to eq :done
    ::EM.stop_event_loop
  }
end

# Some examples block forever on a feature the server lacks (e.g. reading
# the syslog socket); bound each one so the run always ends.
EXAMPLE_TIMEOUT = Integer(ENV.fetch("WARDEN_COMPAT_EXAMPLE_TIMEOUT", "60"))

RSpec.configure do |config|
  config.around(:each) do |example|
    Timeout.timeout(EXAMPLE_TIMEOUT) { example.run }
  end

  if Process.uid != 0
    config.filter_run_excluding :needs_root => true
  end
  config.include(Helpers::Network)
end
