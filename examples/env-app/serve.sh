#!/bin/sh
# The web process: answers every connection on $PORT with handler.sh, which
# prints this process's environment. The listener is what the buildpack
# found in the root filesystem (.profile.d/listener.sh).
cd "$(dirname "$0")" || exit 1
[ -n "${PORT:-}" ] || { echo "serve.sh: PORT is not set" >&2; exit 1; }
echo "env-app: listening on $PORT with ${SHELL_APP_LISTENER:-?}"
case "${SHELL_APP_LISTENER:-}" in
  nc)
    exec nc -ll -p "$PORT" -e ./handler.sh
    ;;
  perl)
    exec perl -MSocket -e '
      my ($port, @cmd) = @ARGV;
      socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
      setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or die "setsockopt: $!\n";
      bind($s, sockaddr_in($port, INADDR_ANY)) or die "bind $port: $!\n";
      listen($s, 64) or die "listen: $!\n";
      $SIG{CHLD} = "IGNORE";
      while (1) {
        accept(my $c, $s) or next;
        my $pid = fork;
        if (defined $pid && $pid == 0) {
          close $s;
          open(STDIN, "<&", $c) or exit 1;
          open(STDOUT, ">&", $c) or exit 1;
          exec @cmd;
          exit 127;
        }
        close $c;
      }' "$PORT" ./handler.sh
    ;;
  *)
    echo "serve.sh: SHELL_APP_LISTENER is not set (was .profile.d sourced?)" >&2
    exit 1
    ;;
esac
