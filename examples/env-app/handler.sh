#!/bin/sh
# One HTTP/1.0 exchange on stdin/stdout: the request is read up to its
# empty line, the answer is this process's environment, one NAME=VALUE a line.
cr=$(printf '\r')
while IFS= read -r line; do
  case "$line" in
    "" | "$cr") break ;;
  esac
done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n'
env
