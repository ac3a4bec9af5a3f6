# warden-rs top-level Makefile.
#
#   make demo      build everything, build the busybox rootfs, start a container, run a command in it
#   make test      build, build both rootfs, run unit and end-to-end tests (as root), then the
#                  controller end-to-end tests again on the Debian rootfs
#   make test-v2   the cgroup v2 tests (device program) in a cgroup-v2 VM (tests/run-v2.sh)
#   make test-faults   the long fault tests (tests/tests/faults.rs): 50 SIGKILLs of the server under
#                  load, 1000 create/destroy cycles (make test runs 8 and 200)
#   make bench     compare against peers (unshare+chroot, bwrap, crun, nsenter, plain pipes); prints ratios
#   make lint      cargo fmt --check and clippy -D warnings
#   make install PREFIX=/usr/local   install the static binaries and the scripts
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
HELPERS  := wshd wsh iomux-spawn iomux-link oom
BINARIES := $(HELPERS) warden
CARGO    ?= cargo
FUZZ_SECONDS       ?= 600
FUZZ_SHORT_SECONDS ?= 20

export WARDEN_BIN_DIR := $(BIN_DIR)
export WARDEN_ROOTFS  := $(ROOTFS)
export WARDEN_ROOTFS_DEBIAN := $(ROOTFS_DEBIAN)

.PHONY: all build test test-faults test-v2 unit e2e bench lint install rootfs rootfs-debian demo clean check-static fuzz fuzz-short

all: build

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
test: build rootfs rootfs-debian
	$(CARGO) test --release --workspace
	WARDEN_ROOTFS=$(ROOTFS_DEBIAN) $(CARGO) test --release -p warden-tests --test controller

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

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/warden/rootfs-scripts
	for b in $(BINARIES); do install -m 0755 $(BIN_DIR)/$$b $(DESTDIR)$(PREFIX)/bin/$$b; done
	cp -R rootfs-scripts/. $(DESTDIR)$(PREFIX)/share/warden/rootfs-scripts/

demo: build rootfs
	bash tests/demo.sh

clean:
	$(CARGO) clean
	rm -rf build
