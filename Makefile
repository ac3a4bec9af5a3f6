# warden-rs top-level Makefile.
#
#   make demo      build everything, build the busybox rootfs, start a container, run a command in it
#   make test      build, build the rootfs, run unit and end-to-end tests (as root)
#   make bench     compare against peers (unshare+chroot, bwrap, crun, nsenter, plain pipes); prints ratios
#   make lint      cargo fmt --check and clippy -D warnings
#   make install PREFIX=/usr/local   install the static binaries and the scripts
#   make rootfs    (re)build the default busybox root filesystem in build/rootfs
#   make fuzz      every fuzz target for FUZZ_SECONDS (600) each; make fuzz-short: 20 s each (CI)

TRIPLE   := x86_64-unknown-linux-gnu
BIN_DIR  := $(CURDIR)/target/$(TRIPLE)/release
ROOTFS   := $(CURDIR)/build/rootfs
PREFIX   ?= /usr/local
HELPERS  := wshd wsh iomux-spawn iomux-link oom
BINARIES := $(HELPERS) warden
CARGO    ?= cargo
FUZZ_SECONDS       ?= 600
FUZZ_SHORT_SECONDS ?= 20

export WARDEN_BIN_DIR := $(BIN_DIR)
export WARDEN_ROOTFS  := $(ROOTFS)

.PHONY: all build test unit e2e bench lint install rootfs demo clean check-static fuzz fuzz-short

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

test: build rootfs
	$(CARGO) test --release --workspace

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
