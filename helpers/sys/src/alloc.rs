//! An allocation-measuring global allocator for the fuzz targets (`fuzz/`)
//! and the tests that replay their regressions: it proves that a decoder's
//! allocations stay bounded by its input, not by a length field in it.
//!
//! Install it with `#[global_allocator] static A: wsys::alloc::Measuring =
//! wsys::alloc::Measuring;` in a test or fuzz binary (never in a helper),
//! then wrap the code under test in [`measure`]. A single allocation larger
//! than [`HARD_CAP`] is refused outright: the process aborts with a message,
//! which libFuzzer records as a crash with its input.
//!
//! Counters are process-wide; [`measure`] is meant for binaries that run one
//! measured thing at a time (libFuzzer's loop, a one-test replay binary).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest single allocation ever allowed (64 MiB: above every frame and
/// message limit of warden-rs).
pub const HARD_CAP: usize = 64 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator plus live/peak/largest-allocation counters.
pub struct Measuring;

fn refuse(size: usize) -> ! {
    // No allocation here: the message is assembled on the stack.
    const HEAD: &[u8] = b"wsys::alloc: allocation of 0x";
    const TAIL: &[u8] = b" bytes exceeds HARD_CAP\n";
    let mut msg = [0u8; HEAD.len() + 16 + TAIL.len()];
    msg[..HEAD.len()].copy_from_slice(HEAD);
    for i in 0..16 {
        msg[HEAD.len() + i] = b"0123456789abcdef"[(size >> (60 - 4 * i)) & 0xf];
    }
    msg[HEAD.len() + 16..].copy_from_slice(TAIL);
    // Safe wrappers (no allocation): std's stderr may allocate.
    let _ = nix::unistd::write(std::io::stderr(), &msg);
    std::process::abort()
}

fn note(size: usize) {
    if size > HARD_CAP {
        refuse(size);
    }
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's layout and
// pointer unchanged; the counters only observe sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l` (every
        // allocation of ours is forwarded there).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // Counted as a new block while the old one still exists, as the
        // worst case of a moving realloc.
        note(new);
        // SAFETY: as for `dealloc`; `new` is the caller's checked size.
        let q = unsafe { System.realloc(p, l, new) };
        if q.is_null() {
            LIVE.fetch_sub(new, Relaxed);
        } else {
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        q
    }
}

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Most bytes live at once above what was live at the start.
    pub peak: usize,
    /// Largest single allocation.
    pub largest: usize,
}

/// Runs `f` and reports its allocations (meaningful only where
/// [`Measuring`] is the global allocator).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    let r = f();
    let u = Usage {
        peak: PEAK.load(Relaxed).saturating_sub(base),
        largest: LARGEST.load(Relaxed),
    };
    (r, u)
}
