#!/bin/sh
# `make deps` / `make deps-test`: installs the Debian packages named as
# arguments that are not installed yet, with apt-get, saying which and why;
# then checks for cargo. Exits 1 with a message saying what to do when it
# cannot (not root, no apt-get, no cargo). Installs nothing when nothing
# is missing.
set -eu
missing=
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing packages:$missing; this is not a Debian-like system (no apt-get): install them with its package manager" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing; run as root (sudo make deps) to install them with apt-get" >&2
    exit 1
  fi
  echo "deps: installing the missing Debian packages:$missing (apt-get install)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -q --no-install-recommends $missing
fi
if ! command -v "${CARGO:-cargo}" >/dev/null 2>&1; then
  echo "deps: cargo not found in PATH ($PATH): install Rust 1.80 or later with rustup; under sudo, which resets PATH, run: sudo env PATH=\"\$PATH\" make ..." >&2
  exit 1
fi
