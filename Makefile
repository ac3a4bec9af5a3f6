# warden-rs top-level Makefile.
#
#   make deps      install the Debian packages the demo needs (apt-get; as root), if missing
#   make demo      deps, build everything, build the busybox rootfs, start a container, run a command in it
#   make test      deps-test, build, build both rootfs, run unit and end-to-end tests (as root), then the
#                  controller end-to-end tests again on the Debian rootfs
#   make test-order  the request-order tests (tests/tests/order.rs) 200 times each under CPU load
#   make test-v2   the cgroup v2 tests (device program) in a cgroup-v2 VM (tests/run-v2.sh)
#   make test-faults   the long fault tests (tests/tests/faults.rs): 50 SIGKILLs of the server under
#                  load, 1000 create/destroy cycles (make test runs 8 and 200)
#   make bench     compare against peers (unshare+chroot, bwrap, crun, nsenter, plain pipes); prints ratios
#   make lint      cargo fmt --check and clippy -D warnings
#   make install PREFIX=/usr/local   install the binaries, scripts, config, systemd unit, man pages
#                  and shell completions (DESTDIR= for staging)
#   make man       man pages in build/man (warden's from its clap definition, the helpers' from man/)
#   make rootfs    (re)build the default busybox root filesystem in build/rootfs
#   make rootfs-debian   Debian bookworm minbase root filesystem in build/rootfs-debian (debootstrap;
#                  built once, then cached: remove the directory to rebuild it)
#   make fuzz      every fuzz target for FUZZ_SECONDS (600) each; make fuzz-short: 20 s each (CI)

TRIPLE   := x86_64-unknown-linux-gnu
BIN_DIR  := $(CURDIR)/target/$(TRIPLE)/release
ROOTFS   := $(CURDIR)/build/rootfs
ROOTFS_DEBIAN := $(CURDIR)/build/rootfs-debian
DEBIAN_SUITE  ?= bookworm
DEBIAN_MIRROR ?= http://deb.debian.org/debian
PREFIX   ?= /usr/local
SYSCONFDIR ?= /etc
SYSTEMD_UNIT_DIR ?= /lib/systemd/system
MAN_DIR  := $(CURDIR)/build/man
# Debian packages: what `make demo` needs (building, the busybox rootfs,
# containers' networking), and what `make test` needs on top (the Debian
# rootfs, tests that use rsync, ps, curl; bash-static for the rootfs tests).
DEPS      := gcc libc6-dev file busybox-static iproute2 nftables
TEST_DEPS := $(DEPS) bash-static procps rsync curl debootstrap debian-archive-keyring
HELPERS  := wshd wsh iomux-spawn iomux-link oom
BINARIES := $(HELPERS) warden
CARGO    ?= cargo
FUZZ_SECONDS       ?= 600
FUZZ_SHORT_SECONDS ?= 20

export WARDEN_BIN_DIR := $(BIN_DIR)
export WARDEN_ROOTFS  := $(ROOTFS)
export WARDEN_ROOTFS_DEBIAN := $(ROOTFS_DEBIAN)

.PHONY: all build test test-order test-faults test-v2 unit e2e bench lint install install-files man rootfs rootfs-debian demo clean check-static fuzz fuzz-short deps deps-test

all: build

# Installs the Debian packages of $(DEPS) that are missing, with apt-get
# (as root), saying which; then checks that cargo is there.
deps:
	@sh tests/deps.sh $(DEPS)

deps-test:
	@sh tests/deps.sh $(TEST_DEPS)

build:
	$(CARGO) build --release --workspace --bins
	@$(MAKE) --no-print-directory check-static

# Every helper must be a static executable without a setuid bit.
check-static:
	@for b in $(BINARIES); do \
	  f=$(BIN_DIR)/$$b; \
	  file -L $$f | grep -Eq 'statically linked|static-pie linked' || { echo "$$b is not static: $$(file -L $$f)"; exit 1; }; \
	  [ ! -u $$f ] || { echo "$$b has a setuid bit"; exit 1; }; \
	done; echo "static: $(BINARIES)"

rootfs: $(ROOTFS)/bin/busybox

$(ROOTFS)/bin/busybox: rootfs-scripts/build-rootfs.sh
	sh rootfs-scripts/build-rootfs.sh $(ROOTFS)

# debootstrap into a temporary directory, renamed into place only when it
# succeeded, so an interrupted build is never taken for a cached one. A stale
# temporary directory is removed without crossing into anything debootstrap
# left mounted in it (--one-file-system). The downloaded .debs are dropped.
rootfs-debian: $(ROOTFS_DEBIAN)/etc/debian_version

$(ROOTFS_DEBIAN)/etc/debian_version:
	@[ ! -e $(ROOTFS_DEBIAN) ] || { echo "$(ROOTFS_DEBIAN) exists but holds no etc/debian_version: remove it to rebuild"; exit 1; }
	@command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap debian-archive-keyring"; exit 1; }
	rm -rf --one-file-system $(ROOTFS_DEBIAN).tmp
	debootstrap --variant=minbase $(DEBIAN_SUITE) $(ROOTFS_DEBIAN).tmp $(DEBIAN_MIRROR)
	rm -f $(ROOTFS_DEBIAN).tmp/var/cache/apt/archives/*.deb
	mv $(ROOTFS_DEBIAN).tmp $(ROOTFS_DEBIAN)

# Every test on the busybox rootfs (rootfs.rs uses the Debian one itself),
# then the controller's end-to-end tests again on the Debian rootfs.
test: deps-test build rootfs rootfs-debian
	$(CARGO) test --release --workspace
	WARDEN_ROOTFS=$(ROOTFS_DEBIAN) $(CARGO) test --release -p warden-tests --test controller

# Issue 16: every order case ORDER_LOOPS times, with two busy loops as load.
ORDER_LOOPS ?= 200
test-order: build rootfs
	WARDEN_ORDER_LOOPS=$(ORDER_LOOPS) $(CARGO) test --release -p warden-tests --test order -- --test-threads 1

# The fault tests at full length (make test runs them short). WARDEN_FAULT_SEED=N
# replays a SIGKILL run (each run prints its seed).
FAULT_KILLS  ?= 50
FAULT_CYCLES ?= 1000
test-faults: build rootfs
	WARDEN_FAULT_KILLS=$(FAULT_KILLS) WARDEN_FAULT_CYCLES=$(FAULT_CYCLES) \
	  $(CARGO) test --release -p warden-tests --test faults -- --nocapture --test-threads=1

# Test binaries built here, run in a throwaway cgroup v2 VM (shared/vm/run).
test-v2: build rootfs
	sh tests/run-v2.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Coverage-guided fuzzing (cargo-fuzz, installed when missing; fuzz/README.md).
# A crash fails the run and is saved in fuzz/regressions/<target>/, which
# `cargo test` replays.
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

fuzz-short:
	bash fuzz/run.sh $(FUZZ_SHORT_SECONDS)

bench: build rootfs
	bash tests/bench/run.sh

# Man pages: warden's generated from its clap definition (`warden man`),
# the helpers' written by hand (man/*.8).
man:
	rm -rf $(MAN_DIR) && mkdir -p $(MAN_DIR)
	$(BIN_DIR)/warden man $(MAN_DIR)
	cp man/*.8 $(MAN_DIR)/

install: build install-files

# Everything but the build: binaries, scripts, the config (kept when one is
# there), the systemd unit (its paths follow PREFIX and SYSCONFDIR), man
# pages and shell completions.
install-files: man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/warden/rootfs-scripts \
	  $(DESTDIR)$(SYSCONFDIR)/warden $(DESTDIR)$(SYSTEMD_UNIT_DIR) \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	for b in $(BINARIES); do install -m 0755 $(BIN_DIR)/$$b $(DESTDIR)$(PREFIX)/bin/$$b; done
	cp -R rootfs-scripts/. $(DESTDIR)$(PREFIX)/share/warden/rootfs-scripts/
	[ -e $(DESTDIR)$(SYSCONFDIR)/warden/warden.yml ] || install -m 0644 etc/warden.yml $(DESTDIR)$(SYSCONFDIR)/warden/warden.yml
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' etc/warden.service \
	  > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/warden.service
	install -m 0644 $(MAN_DIR)/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(MAN_DIR)/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(BIN_DIR)/warden completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/warden
	$(BIN_DIR)/warden completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_warden
	$(BIN_DIR)/warden completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/warden.fish

demo: deps build rootfs
	bash tests/demo.sh

clean:
	$(CARGO) clean
	rm -rf build
