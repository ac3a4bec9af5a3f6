//! wsys::alloc::Measuring as the fuzz targets use it.

use wsys::alloc::{measure, Measuring, HARD_CAP};

#[global_allocator]
static ALLOC: Measuring = Measuring;

#[test]
fn measures_peak_and_largest() {
    let (v, u) = measure(|| {
        let a = vec![1u8; 1000];
        drop(a);
        vec![2u8; 300]
    });
    assert_eq!(v.len(), 300);
    assert!(u.largest >= 1000 && u.largest < 2000, "{u:?}");
    assert!(u.peak >= 1000 && u.peak < 2000, "{u:?}");
}

#[test]
fn aborts_above_the_cap() {
    if std::env::var_os("WSYS_ALLOC_CHILD").is_some() {
        let v: Vec<u8> = Vec::with_capacity(HARD_CAP + 1);
        std::hint::black_box(v);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "aborts_above_the_cap", "--nocapture"])
        .env("WSYS_ALLOC_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("wsys::alloc: allocation of 0x0000000004000001 bytes exceeds HARD_CAP\n"),
        "{err}"
    );
}
