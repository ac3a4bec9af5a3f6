//! The copy_out filter never allocates without bound, whatever the stream:
//! a counting global allocator measures the peak heap of the tar reader and
//! of a whole extraction over mutated, truncated and adversarial streams
//! (huge size claims, maximal extended headers, endless input).
//!
//! One test function, so nothing else allocates while it measures.
//! `WARDEN_FUZZ_ITERS` sets the number of mutated streams (default 500).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use warden::copy::Extraction;
use warden::tarstream::{raw_header, Limits, Meta, Reader, Writer, BLOCK, PATH_MAX, PAX_MAX};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let n = LIVE.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(n, Ordering::SeqCst);
            LARGEST.fetch_max(l.size(), Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` and returns (peak live heap above the start, largest block).
fn measure(f: impl FnOnce()) -> (usize, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    LARGEST.store(0, Ordering::SeqCst);
    f();
    (
        PEAK.load(Ordering::SeqCst).saturating_sub(base),
        LARGEST.load(Ordering::SeqCst),
    )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u64 = h[..BLOCK].iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn base_archive(rng: &mut Rng) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let m = Meta {
        mode: 0o755,
        ..Meta::default()
    };
    w.dir(b"d", &m).unwrap();
    for i in 0..rng.below(10) {
        let name = format!("d/{}{i}", "n".repeat(rng.below(300)));
        match rng.below(4) {
            0 => w.dir(name.as_bytes(), &m).unwrap(),
            1 => w.symlink(name.as_bytes(), b"../d", &m).unwrap(),
            2 => w
                .raw(&raw_header(name.as_bytes(), b'1', 0o644, 0, b"d/n0"))
                .unwrap(),
            _ => {
                let n = rng.below(5000);
                w.file(name.as_bytes(), &m, n as u64, &mut &vec![7u8; n][..])
                    .unwrap()
            }
        }
    }
    w.finish().unwrap()
}

fn mutate(rng: &mut Rng, s: &mut Vec<u8>) {
    if s.is_empty() {
        return;
    }
    match rng.below(5) {
        0 => {
            let i = rng.below(s.len());
            s[i] ^= 1 << rng.below(8);
        }
        1 => s.truncate(rng.below(s.len())),
        _ => {
            // A size or type field of some header, with a valid checksum.
            let b = rng.below(s.len() / BLOCK) * BLOCK;
            if b + BLOCK > s.len() {
                return;
            }
            if rng.below(2) == 0 {
                s[b + 156] = b"0125xgLKS"[rng.below(9)];
            } else {
                let f = &mut s[b + 124..b + 136];
                f.fill(0);
                f[0] = 0x80;
                let v = rng.next() >> rng.below(64);
                f[4..12].copy_from_slice(&v.to_be_bytes());
            }
            fix_checksum(&mut s[b..b + BLOCK]);
        }
    }
}

fn drain_reader(s: &[u8], l: Limits) {
    let mut r = Reader::new(s, l);
    let mut buf = [0u8; 4096];
    while let Ok(Some(_)) = r.next_entry() {
        while let Ok(n) = r.read_data(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

fn extract(s: &[u8], dst: &std::path::Path, l: Limits) {
    let mut ex = Extraction::begin(dst, true, l).unwrap();
    let _ = ex.extract(s);
    drop(ex); // never committed: undone
}

/// An endless stream of one repeated block.
struct Endless([u8; BLOCK], usize);

impl Read for Endless {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = b.len().min(BLOCK - self.1);
        b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 = (self.1 + n) % BLOCK;
        Ok(n)
    }
}

#[test]
fn filter_heap_stays_bounded() {
    let l = Limits {
        max_bytes: 64 << 20,
        max_entries: 1000,
    };
    let dst = std::env::temp_dir().join(format!("tar-alloc-{}", std::process::id()));
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dst.clone());
    let iters: u64 = std::env::var("WARDEN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut worst = (0, 0);
    for seed in 0..iters {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut s = base_archive(&mut rng);
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut s);
        }
        let (peak, largest) = measure(|| drain_reader(&s, l));
        assert!(peak < 256 << 10, "seed {seed}: reader peak {peak}");
        assert!(largest <= 128 << 10, "seed {seed}: block of {largest}");
        let (peak, _) = measure(|| extract(&s, &dst, l));
        assert!(peak < 1 << 20, "seed {seed}: extraction peak {peak}");
        worst = (worst.0.max(peak), worst.1.max(largest));
        assert!(!dst.exists(), "seed {seed}: partial output left");
    }
    eprintln!(
        "worst extraction peak {} B, largest block {} B",
        worst.0, worst.1
    );

    // Adversarial headers: a 2^60-byte file, a maximal pax header, a
    // maximal GNU long name, and their over-limit variants.
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let mut h = raw_header(b"huge", b'0', 0o644, 0, b"");
    h[124..136].fill(0);
    h[124] = 0x80;
    h[128..136].copy_from_slice(&(1u64 << 60).to_be_bytes());
    fix_checksum(&mut h);
    cases.push(h.to_vec());
    for (ty, size) in [
        (b'x', PAX_MAX),
        (b'x', PAX_MAX + 1),
        (b'L', PATH_MAX as u64 + 1),
        (b'L', u64::MAX >> 4),
        (b'g', 1 << 40),
    ] {
        let mut s = raw_header(b"meta", ty, 0o644, size, b"").to_vec();
        s.resize(BLOCK + size.min(PAX_MAX + 1024) as usize, b'1');
        cases.push(s);
    }
    for s in &cases {
        let (peak, _) = measure(|| drain_reader(s, l));
        assert!(peak < 256 << 10, "adversarial reader peak {peak}");
        let (peak, _) = measure(|| extract(s, &dst, l));
        assert!(peak < 1 << 20, "adversarial extraction peak {peak}");
    }

    // Endless input: empty files forever, zero trailer forever.
    let file = raw_header(b"f", b'0', 0o644, 0, b"");
    let (peak, _) = measure(|| {
        let mut r = Reader::new(Endless(file, 0), l);
        while let Ok(Some(_)) = r.next_entry() {}
        assert!(r.bytes_read() <= l.max_bytes);
    });
    assert!(peak < 256 << 10, "endless reader peak {peak}");
    let (peak, _) = measure(|| {
        let mut ex = Extraction::begin(&dst, true, l).unwrap();
        assert!(ex.extract(Endless([0u8; BLOCK], 0)).is_err());
    });
    assert!(peak < 1 << 20, "endless extraction peak {peak}");
    // Endless distinct files: bounded by max_entries (each costs one small
    // record); the limit error comes before memory grows further.
    struct Many(u64, Vec<u8>);
    impl Read for Many {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                self.0 += 1;
                self.1 =
                    raw_header(format!("f{}", self.0).as_bytes(), b'0', 0o644, 0, b"").to_vec();
            }
            let n = b.len().min(self.1.len());
            b[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    let (peak, _) = measure(|| {
        let mut ex = Extraction::begin(&dst, true, l).unwrap();
        let e = ex.extract(Many(0, Vec::new())).unwrap_err();
        assert!(e.contains("more than 1000 entries"), "{e}");
    });
    assert!(peak < 1 << 20, "many-entries extraction peak {peak}");
    assert!(!dst.exists());
}
