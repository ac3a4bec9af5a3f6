# Minimal stand-in for the rspec-eventually gem (not packaged by Debian),
# enough for warden's shared examples:
#   expect { expr }.to eventually(matcher)
#   expect { expr }.to eventually_not(matcher)
#   ... .within(seconds) / .pause_for(seconds)
# The block is re-evaluated every `pause` seconds until the matcher agrees
# or `timeout` (default 5 s) passes; errors raised by the block count as
# "not yet".
require "rspec/expectations"

module Rspec
  module Eventually
    class << self
      attr_accessor :timeout, :pause
    end
    self.timeout = 5
    self.pause = 0.1

    class Base
      def initialize(target, custom_msg = nil)
        @target = target
        @timeout = Rspec::Eventually.timeout
        @pause = Rspec::Eventually.pause
        @custom_msg = custom_msg
        @last_error = nil
      end

      def within(t)
        @timeout = t
        self
      end

      def pause_for(t)
        @pause = t
        self
      end

      def supports_block_expectations?
        true
      end

      def matches?(block)
        raise "#{self.class.name} needs a block: expect { ... }" unless block.respond_to?(:call)
        deadline = Time.now + @timeout
        loop do
          begin
            return true if pass?(block.call)
            @last_error = nil
          rescue StandardError => e
            @last_error = e
          end
          return false if Time.now >= deadline
          sleep @pause
        end
      end

      def failure_message
        msg = @custom_msg || "expected block to #{verb} #{@target.description} within #{@timeout}s"
        msg += " (last failure: #{@target.failure_message rescue @last_error})"
        msg
      end
    end

    class Positive < Base
      def pass?(value)
        @target.matches?(value)
      end

      def verb
        "eventually"
      end
    end

    class Negative < Base
      def pass?(value)
        if @target.respond_to?(:does_not_match?)
          @target.does_not_match?(value)
        else
          !@target.matches?(value)
        end
      end

      def verb
        "eventually not"
      end
    end

    def eventually(target, custom_msg = nil)
      Positive.new(target, custom_msg)
    end

    def eventually_not(target, custom_msg = nil)
      Negative.new(target, custom_msg)
    end
  end
end

RSpec.configure { |c| c.include Rspec::Eventually }
