#!/bin/sh
# Builds the default container root filesystem from Debian's busybox-static.
#
# Usage: build-rootfs.sh DEST
#
# The result is a small busybox userland with:
#   - /bin/busybox and one symlink per applet under /bin, /sbin, /usr/bin, /usr/sbin
#   - /bin/bash: Debian's bash-static when installed (warden spawns jobs with
#     /bin/bash), else a two-line wrapper running busybox ash
#   - users root (0) and vcap (10000, home /home/vcap, shell /bin/sh),
#     groups root, tty (5), vcap (10000) and vcapextra (10001, vcap a member)
#   - empty /proc, /dev, /dev/pts, /dev/shm, /sys, /tmp (1777) mount points
# It is rebuilt from scratch each run (DEST is replaced atomically).
set -eu

dest=${1:?usage: build-rootfs.sh DEST}
case "$dest" in /*) ;; *) dest="$(pwd)/$dest" ;; esac
busybox=${BUSYBOX:-/bin/busybox}

if ! "$busybox" --list >/dev/null 2>&1; then
  echo "build-rootfs: $busybox is not a busybox binary (apt-get install busybox-static)" >&2
  exit 1
fi
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
  echo "build-rootfs: $busybox is not statically linked (apt-get install busybox-static)" >&2
  exit 1
fi

tmp="$dest.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
cd "$tmp"

mkdir -p bin sbin usr/bin usr/sbin etc home/vcap root proc sys dev dev/pts dev/shm tmp var/log var/tmp run
chmod 1777 tmp var/tmp
chmod 0700 root
cp "$busybox" bin/busybox
chmod 0755 bin/busybox

for applet in $("$busybox" --list-full); do
  case "$applet" in
    bin/busybox) continue ;;
  esac
  [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done

# warden runs every job with /bin/bash and its examples use bash features, so
# use Debian's static bash when it is there; a busybox-ash wrapper otherwise.
bash_static=${BASH_STATIC:-/bin/bash-static}
if [ -x "$bash_static" ] && file -L "$bash_static" | grep -q 'statically linked'; then
  rm -f bin/bash
  cp "$bash_static" bin/bash
  chmod 0755 bin/bash
else
  rm -f bin/bash
  printf '#!/bin/sh\nexec /bin/sh "$@"\n' > bin/bash
  chmod 0755 bin/bash
fi

cat > etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
vcap:x:10000:10000:vcap:/home/vcap:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > etc/group <<'G'
root:x:0:
tty:x:5:
vcap:x:10000:
vcapextra:x:10001:vcap
nogroup:x:65534:
G
cat > etc/shadow <<'S'
root:*:19000:0:99999:7:::
vcap:*:19000:0:99999:7:::
S
chmod 0640 etc/shadow
echo "container" > etc/hostname
printf '127.0.0.1 localhost\n' > etc/hosts
: > etc/resolv.conf
printf 'export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n' > etc/profile
chown 10000:10000 home/vcap
chmod 0755 home/vcap

cd /
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "rootfs: $dest"
