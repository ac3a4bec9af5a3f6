//! Unit tests of the host side of copy_in/copy_out on a scratch directory:
//! forged streams leave nothing behind, modes are masked, symlinks and hard
//! links cannot reach outside, and Source -> Extraction round-trips.

use super::fsat::remove_tree;
use super::*;
use crate::tarstream::{raw_header, Limits, Meta, Reader, Writer, BLOCK};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Tmp {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "copy-ut-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Tmp(p)
}

fn lim() -> Limits {
    Limits {
        max_bytes: 1 << 30,
        max_entries: 10_000,
    }
}

fn m(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
    }
}

fn archive(f: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    f(&mut w);
    w.finish().unwrap()
}

/// A raw entry (any type) with `data`, padded.
fn raw(w: &mut Writer<Vec<u8>>, name: &[u8], ty: u8, mode: u32, link: &[u8], data: &[u8]) {
    w.raw(&raw_header(name, ty, mode, data.len() as u64, link))
        .unwrap();
    w.raw(data).unwrap();
    w.raw(&vec![0u8; (BLOCK - data.len() % BLOCK) % BLOCK])
        .unwrap();
}

fn extract_with(dst: &Path, dir: bool, s: &[u8], l: Limits) -> Result<Summary, String> {
    let mut ex = Extraction::begin(dst, dir, l)?;
    ex.extract(s)?;
    ex.commit()
}

fn extract(dst: &Path, dir: bool, s: &[u8]) -> Result<Summary, String> {
    extract_with(dst, dir, s, lim())
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}

/// Every entry below `root`, never following a symlink: type, mode,
/// link target or data checksum.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, v: &mut Vec<String>) {
        let mut es: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
        es.sort_by_key(|e| e.file_name());
        for e in es {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            if ft.is_symlink() {
                v.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&path).unwrap().display()
                ));
            } else if ft.is_dir() {
                v.push(format!("{rel}/ {:o}", md.mode() & 0o7777));
                walk(root, &path, v);
            } else if ft.is_file() {
                let d = std::fs::read(&path).unwrap();
                v.push(format!(
                    "{rel} {:o} {} {:x}",
                    md.mode() & 0o7777,
                    d.len(),
                    fnv(&d)
                ));
            } else {
                v.push(format!("{rel} SPECIAL {:o}", md.mode()));
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v
}

/// A destination with host content that a copy must leave alone.
fn dst_with_host_files(t: &Tmp) -> (PathBuf, Vec<String>) {
    let dst = t.0.join("dst");
    std::fs::create_dir_all(dst.join("hostdir")).unwrap();
    std::fs::write(dst.join("keep"), "host file").unwrap();
    std::fs::set_permissions(dst.join("keep"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dst.join("hostdir/inner"), "inner").unwrap();
    let before = tree(&t.0);
    (dst, before)
}

type Bad = Box<dyn Fn(&mut Writer<Vec<u8>>)>;

/// Good entries, then `bad`, then one more good entry.
fn around(bad: &Bad) -> Vec<u8> {
    archive(|w| {
        w.dir(b"app", &m(0o755)).unwrap();
        w.file(b"app/ok", &m(0o644), 2, &mut &b"ok"[..]).unwrap();
        w.dir(b"app/sub", &m(0o755)).unwrap();
        w.file(b"app/sub/f", &m(0o4777), 1, &mut &b"f"[..]).unwrap();
        w.file(b"top", &m(0o666), 1, &mut &b"t"[..]).unwrap();
        bad(w);
        w.file(b"after", &m(0o644), 1, &mut &b"a"[..]).unwrap();
    })
}

#[test]
fn forged_entries_fail_the_copy_and_nothing_stays() {
    let t = tmp("forged");
    let (dst, before) = dst_with_host_files(&t);
    let cases: Vec<(&str, Bad)> = vec![
        (
            "hard link target",
            Box::new(|w| raw(w, b"app/shadow", b'1', 0o644, b"/etc/shadow", b"")),
        ),
        (
            "hard link target",
            Box::new(|w| raw(w, b"app/up", b'1', 0o644, b"../keep", b"")),
        ),
        (
            "did not create",
            Box::new(|w| raw(w, b"app/k", b'1', 0o644, b"keep", b"")),
        ),
        (
            "hard link target",
            Box::new(|w| {
                raw(w, b"app/fifo", b'6', 0o644, b"", b"");
                raw(w, b"app/k", b'1', 0o644, b"app/fifo", b"")
            }),
        ),
        (
            "`..`",
            Box::new(|w| raw(w, b"../escape", b'0', 0o644, b"", b"x")),
        ),
        (
            "`..`",
            Box::new(|w| raw(w, b"app/../../escape", b'0', 0o644, b"", b"x")),
        ),
        (
            "absolute",
            Box::new(|w| raw(w, b"/tmp/abs-escape", b'0', 0o644, b"", b"x")),
        ),
        (
            "not a directory",
            Box::new(|w| {
                w.symlink(b"app/l", b".", &m(0o777)).unwrap();
                raw(w, b"app/l/x", b'0', 0o644, b"", b"x")
            }),
        ),
        (
            "not a directory",
            Box::new(|w| {
                // An escaping symlink is left out, so nothing is there to follow.
                w.symlink(b"app/esc", b"/", &m(0o777)).unwrap();
                w.dir(b"app/esc", &m(0o755)).unwrap();
                w.symlink(b"app/esc2", b"../..", &m(0o777)).unwrap();
                raw(w, b"keep/x", b'0', 0o644, b"", b"x")
            }),
        ),
        (
            "directory of that name",
            Box::new(|w| raw(w, b"hostdir", b'0', 0o644, b"", b"x")),
        ),
        (
            "duplicate",
            Box::new(|w| raw(w, b"app/ok", b'0', 0o644, b"", b"again")),
        ),
        (
            "sparse",
            Box::new(|w| raw(w, b"app/sparse", b'S', 0o644, b"", b"")),
        ),
    ];
    for (want, bad) in &cases {
        let e = extract(&dst, true, &around(bad)).unwrap_err();
        assert!(e.contains(want), "want {want:?}: {e}");
        assert!(e.starts_with('"'), "the error names the entry: {e}");
        assert_eq!(tree(&t.0), before, "after {e}");
    }
    assert!(!Path::new("/tmp/abs-escape").exists());
}

/// Devices, FIFOs and symlinks leaving the destination: left out of a
/// directory copy (which succeeds), refused as the copied object itself.
#[test]
fn special_files_and_escaping_symlinks_are_left_out_or_refused() {
    let t = tmp("leftout");
    let (dst, before) = dst_with_host_files(&t);
    let cases: Vec<(&str, &str, Bad)> = vec![
        (
            "app/sda",
            "block device",
            Box::new(|w| raw(w, b"app/sda", b'4', 0o666, b"", b"")),
        ),
        (
            "app/mem",
            "character device",
            Box::new(|w| raw(w, b"app/mem", b'3', 0o666, b"", b"")),
        ),
        (
            "app/fifo",
            "FIFO",
            Box::new(|w| raw(w, b"app/fifo", b'6', 0o666, b"", b"")),
        ),
        (
            "app/hostroot",
            "leaves the destination",
            Box::new(|w| w.symlink(b"app/hostroot", b"/", &m(0o777)).unwrap()),
        ),
        (
            "app/up",
            "leaves the destination",
            Box::new(|w| w.symlink(b"app/up", b"../../etc", &m(0o777)).unwrap()),
        ),
        (
            "app/mid",
            "leaves the destination",
            Box::new(|w| w.symlink(b"app/mid", b"x/../../..", &m(0o777)).unwrap()),
        ),
        (
            "top2",
            "leaves the destination",
            Box::new(|w| w.symlink(b"top2", b"..", &m(0o777)).unwrap()),
        ),
    ];
    for (name, why, bad) in &cases {
        let mut ex = Extraction::begin(&dst, true, lim()).unwrap();
        ex.extract(&around(bad)[..]).unwrap();
        let sum = ex.commit().unwrap();
        assert_eq!(sum.left_out, 1, "{name}");
        assert!(
            sum.left_out_names[0].starts_with(&format!("\"{name}\" (")),
            "{sum:?}"
        );
        assert!(sum.left_out_names[0].contains(why), "{sum:?}");
        assert!(
            std::fs::symlink_metadata(dst.join(name)).is_err(),
            "{name} made"
        );
        assert_eq!(std::fs::read(dst.join("app/ok")).unwrap(), b"ok");
        assert_eq!(std::fs::read(dst.join("after")).unwrap(), b"a");
        for p in ["app", "top", "after"] {
            remove_tree(&ex_base(&dst), p.as_bytes(), 0);
        }
        assert_eq!(tree(&t.0), before, "{name}");
        // The entry alone, as the copied object: refused, nothing made.
        let alone = archive(|w| bad(w));
        let e = extract(&dst, false, &alone).unwrap_err();
        assert!(e.contains(why) && e.contains("refused"), "{e}");
        let e = extract(&t.0.join("newname"), false, &alone).unwrap_err();
        assert!(e.contains("refused") || e.contains("outside"), "{e}");
        assert_eq!(tree(&t.0), before, "{name} alone");
    }
    // Many left out: counted, the first few named.
    let s = archive(|w| {
        w.dir(b"d", &m(0o755)).unwrap();
        for i in 0..40 {
            raw(w, format!("d/p{i}").as_bytes(), b'6', 0o644, b"", b"");
        }
    });
    let mut ex = Extraction::begin(&t.0.join("many"), true, lim()).unwrap();
    ex.extract(&s[..]).unwrap();
    let sum = ex.commit().unwrap();
    assert_eq!(sum.left_out, 40);
    assert_eq!(sum.left_out_names.len(), LEFT_OUT_NAMES);
    assert_eq!(std::fs::read_dir(t.0.join("many/d")).unwrap().count(), 0);
}

fn ex_base(dst: &Path) -> OwnedFd {
    wsys::fs::openat(
        None,
        dst,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap()
}

#[test]
fn modes_are_masked() {
    let t = tmp("modes");
    let s = archive(|w| {
        w.dir(b"d", &m(0o1777)).unwrap();
        w.dir(b"d/private", &m(0o700)).unwrap();
        for (n, mode) in [
            ("d/suid", 0o4755),
            ("d/sgid", 0o2755),
            ("d/ww", 0o666),
            ("d/wx", 0o777),
            ("d/ro", 0o400),
            ("d/private/f", 0o640),
        ] {
            w.file(n.as_bytes(), &m(mode), 1, &mut &b"x"[..]).unwrap();
        }
    });
    extract(&t.0, true, &s).unwrap();
    let mode = |p: &str| std::fs::symlink_metadata(t.0.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("d"), 0o755);
    assert_eq!(mode("d/private"), 0o700);
    assert_eq!(mode("d/suid"), 0o755);
    assert_eq!(mode("d/sgid"), 0o755);
    assert_eq!(mode("d/ww"), 0o644);
    assert_eq!(mode("d/wx"), 0o755);
    assert_eq!(mode("d/ro"), 0o400);
    assert_eq!(mode("d/private/f"), 0o640);
    let md = std::fs::metadata(t.0.join("d/ww")).unwrap();
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(
        md.uid(),
        nix::unistd::geteuid().as_raw(),
        "owned by the server"
    );
}

#[test]
fn host_symlinks_are_never_followed() {
    let t = tmp("hostlink");
    let outside = t.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dst = t.0.join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("hostlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("f"), dst.join("filelink")).unwrap();
    let s = archive(|w| {
        w.file(b"hostlink/f", &m(0o644), 1, &mut &b"x"[..]).unwrap();
    });
    let e = extract(&dst, true, &s).unwrap_err();
    assert!(e.contains("not a directory"), "{e}");
    // A file entry over a host symlink replaces the symlink, never writes
    // through it.
    let s = archive(|w| {
        w.file(b"filelink", &m(0o644), 3, &mut &b"new"[..]).unwrap();
    });
    extract(&dst, true, &s).unwrap();
    assert!(std::fs::symlink_metadata(dst.join("filelink"))
        .unwrap()
        .is_file());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn inside_symlinks_and_hard_links_are_kept() {
    let t = tmp("links");
    let s = archive(|w| {
        w.dir(b"app", &m(0o755)).unwrap();
        w.dir(b"app/lib", &m(0o755)).unwrap();
        w.file(b"app/lib/a.so.1", &m(0o644), 3, &mut &b"elf"[..])
            .unwrap();
        w.symlink(b"app/lib/a.so", b"a.so.1", &m(0o777)).unwrap();
        w.dir(b"app/bin", &m(0o755)).unwrap();
        w.symlink(b"app/bin/lib", b"../lib", &m(0o777)).unwrap();
        w.symlink(b"app/bin/self", b".", &m(0o777)).unwrap();
        w.symlink(b"app/up", b"..", &m(0o777)).unwrap();
        raw(w, b"app/bin/hard", b'1', 0o755, b"app/lib/a.so.1", b"");
    });
    let dst = t.0.join("dst");
    extract(&dst, true, &s).unwrap();
    assert_eq!(std::fs::read(dst.join("app/bin/lib/a.so")).unwrap(), b"elf");
    assert_eq!(
        std::fs::read_link(dst.join("app/up")).unwrap(),
        Path::new("..")
    );
    let h = std::fs::symlink_metadata(dst.join("app/bin/hard")).unwrap();
    let a = std::fs::symlink_metadata(dst.join("app/lib/a.so.1")).unwrap();
    assert!(h.is_file());
    assert_ne!(h.ino(), a.ino(), "hard links are materialised as copies");
    assert_eq!(std::fs::read(dst.join("app/bin/hard")).unwrap(), b"elf");
    assert_eq!(h.mode() & 0o777, 0o755);
}

#[test]
fn existing_files_are_replaced_only_on_success() {
    let t = tmp("replace");
    let dst = t.0.join("dst");
    std::fs::create_dir_all(dst.join("sub")).unwrap();
    std::fs::set_permissions(dst.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dst.join("f"), "old f").unwrap();
    std::fs::write(dst.join("sub/g"), "old g").unwrap();
    let good = |w: &mut Writer<Vec<u8>>| {
        w.dir(b".", &m(0o777)).unwrap();
        w.file(b"f", &m(0o644), 5, &mut &b"new f"[..]).unwrap();
        w.dir(b"sub", &m(0o777)).unwrap();
        w.file(b"sub/g", &m(0o644), 5, &mut &b"new g"[..]).unwrap();
        raw(w, b"sub/h", b'1', 0o644, b"sub/g", b"");
        w.file(b"sub/n", &m(0o644), 1, &mut &b"n"[..]).unwrap();
    };
    let before = tree(&t.0);
    let s = archive(|w| {
        good(w);
        raw(w, b"sub/dev", b'0', 0o666, b"", b"");
        raw(w, b"/sub/dev", b'0', 0o666, b"", b"");
    });
    let e = extract(&dst, true, &s).unwrap_err();
    assert!(e.contains("\"/sub/dev\": absolute path refused"), "{e}");
    assert_eq!(tree(&t.0), before, "old files intact, no temporaries");
    extract(&dst, true, &archive(good)).unwrap();
    assert_eq!(std::fs::read(dst.join("f")).unwrap(), b"new f");
    assert_eq!(std::fs::read(dst.join("sub/g")).unwrap(), b"new g");
    assert_eq!(std::fs::read(dst.join("sub/h")).unwrap(), b"new g");
    let mode = |p: &str| std::fs::metadata(dst.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("sub"), 0o700, "an existing directory keeps its mode");
    assert_ne!(mode(""), 0o777, "the destination itself is left alone");
    let names: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".warden-copy")),
        "{names:?}"
    );
}

#[test]
fn onto_a_new_name() {
    let t = tmp("onto");
    // A single file.
    let s = archive(|w| {
        w.file(b"droplet.tgz", &m(0o644), 4, &mut &b"tgz!"[..])
            .unwrap()
    });
    extract(&t.0.join("renamed"), false, &s).unwrap();
    assert_eq!(std::fs::read(t.0.join("renamed")).unwrap(), b"tgz!");
    // Over an existing file.
    let s2 = archive(|w| w.file(b"x", &m(0o600), 2, &mut &b"v2"[..]).unwrap());
    extract(&t.0.join("renamed"), false, &s2).unwrap();
    assert_eq!(std::fs::read(t.0.join("renamed")).unwrap(), b"v2");
    // A top-level symlink can point nowhere inside a single name.
    let before = tree(&t.0);
    for target in [&b"/etc/shadow"[..], b"../x", b"sibling", b"."] {
        let s = archive(|w| w.symlink(b"droplet.tgz", target, &m(0o777)).unwrap());
        let e = extract(&t.0.join("link"), false, &s).unwrap_err();
        assert!(e.contains("leaves the destination"), "{e}");
        assert_eq!(tree(&t.0), before);
    }
    // A directory onto a new name; its symlinks stay inside it.
    let s = archive(|w| {
        w.dir(b"d", &m(0o755)).unwrap();
        w.dir(b"d/sub", &m(0o755)).unwrap();
        w.file(b"d/f", &m(0o644), 1, &mut &b"1"[..]).unwrap();
        w.symlink(b"d/sub/l", b"../f", &m(0o777)).unwrap();
    });
    extract(&t.0.join("nd"), false, &s).unwrap();
    assert_eq!(std::fs::read(t.0.join("nd/sub/l")).unwrap(), b"1");
    let before = tree(&t.0);
    for bad in [
        archive(|w| {
            w.dir(b"d", &m(0o755)).unwrap();
            w.symlink(b"d/l", b"../renamed", &m(0o777)).unwrap();
        }),
        archive(|w| {
            w.dir(b"d", &m(0o755)).unwrap();
            w.file(b"other", &m(0o644), 1, &mut &b"1"[..]).unwrap();
        }),
        archive(|w| w.dir(b".", &m(0o755)).unwrap()),
    ] {
        let e = extract(&t.0.join("nd2"), false, &bad).unwrap_err();
        assert!(
            e.contains("leaves the destination") || e.contains("outside the copied path"),
            "{e}"
        );
        assert_eq!(tree(&t.0), before);
    }
}

#[test]
fn failures_remove_made_directories_and_partial_output() {
    let t = tmp("partial");
    let dst = t.0.join("new/deeper/dst");
    let mut w = Writer::new(Vec::new());
    w.dir(b"a", &m(0o755)).unwrap();
    for i in 0..50 {
        w.file(
            format!("a/f{i}").as_bytes(),
            &m(0o644),
            600,
            &mut &[i as u8; 600][..],
        )
        .unwrap();
    }
    let full = w.finish().unwrap();
    // Truncated anywhere: an error and nothing left, not even new/.
    for cut in [
        0,
        1,
        511,
        512,
        700,
        2048,
        full.len() / 2,
        full.len() - 2 * BLOCK,
    ] {
        let e = extract(&dst, true, &full[..cut]).unwrap_err();
        assert!(e.contains("truncated"), "cut {cut}: {e}");
        assert!(!t.0.join("new").exists(), "cut {cut}");
    }
    // Limits.
    let e = extract_with(
        &dst,
        true,
        &full,
        Limits {
            max_bytes: 1 << 20,
            max_entries: 10,
        },
    )
    .unwrap_err();
    assert!(e.contains("more than 10 entries"), "{e}");
    assert!(!t.0.join("new").exists());
    let e = extract_with(
        &dst,
        true,
        &full,
        Limits {
            max_bytes: 8192,
            max_entries: 100,
        },
    )
    .unwrap_err();
    assert!(e.contains("8192"), "{e}");
    assert!(!t.0.join("new").exists());
    // Hard links count against the byte limit too.
    let s = archive(|w| {
        w.file(b"big", &m(0o644), 3000, &mut &[1u8; 3000][..])
            .unwrap();
        for i in 0..5 {
            raw(w, format!("h{i}").as_bytes(), b'1', 0o644, b"big", b"");
        }
    });
    let e = extract_with(
        &dst,
        true,
        &s,
        Limits {
            max_bytes: 12_000,
            max_entries: 100,
        },
    )
    .unwrap_err();
    assert!(e.contains("exceeds"), "{e}");
    assert!(!t.0.join("new").exists());
    // A dropped (never committed) extraction undoes itself too.
    {
        let mut ex = Extraction::begin(&dst, true, lim()).unwrap();
        ex.extract(&full[..]).unwrap();
        assert!(dst.join("a/f49").exists());
    }
    assert!(!t.0.join("new").exists());
    extract(&dst, true, &full).unwrap();
    assert_eq!(std::fs::read(dst.join("a/f7")).unwrap(), vec![7u8; 600]);
}

/// Builds a source tree exercising what copy must keep.
fn source_tree(root: &Path) {
    let long = "L".repeat(180);
    std::fs::create_dir_all(root.join("app/lib/deep").join(&long)).unwrap();
    std::fs::create_dir_all(root.join("app/empty")).unwrap();
    std::fs::write(root.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(root.join("app/empty-file"), "").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("app/lib/blob"), &big).unwrap();
    std::fs::write(root.join("app/lib/deep").join(&long).join(&long), "long").unwrap();
    std::fs::write(root.join("app/secret"), "s").unwrap();
    std::os::unix::fs::symlink("blob", root.join("app/lib/blob.link")).unwrap();
    std::os::unix::fs::symlink("../run.sh", root.join("app/lib/run")).unwrap();
    std::os::unix::fs::symlink(format!("deep/{long}/{long}"), root.join("app/lib/longlink"))
        .unwrap();
    for (p, mode) in [
        ("app/run.sh", 0o755),
        ("app/secret", 0o600),
        ("app/lib/blob", 0o644),
        ("app/empty", 0o700),
        ("app", 0o755),
        ("app/lib", 0o750),
    ] {
        std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn archive_of(src: &Path) -> (Vec<u8>, bool) {
    let mut s = Source::open(src).unwrap();
    let mut out = Vec::new();
    s.write_to(&mut out).unwrap();
    (out, s.is_dir())
}

#[test]
fn source_to_extraction_round_trips() {
    let t = tmp("roundtrip");
    let src = t.0.join("src");
    source_tree(&src);
    // The directory itself.
    let (s, dir) = archive_of(&src.join("app"));
    assert!(dir);
    extract(&t.0.join("out1"), true, &s).unwrap();
    assert_eq!(tree(&t.0.join("out1")), tree(&src));
    // Its contents (trailing slash).
    let (s, _) = archive_of(Path::new(&format!("{}/", src.join("app").display())));
    extract(&t.0.join("out2"), true, &s).unwrap();
    assert_eq!(tree(&t.0.join("out2")), tree(&src.join("app")));
    // A single file onto a new name, and a symlink into a directory.
    let (s, dir) = archive_of(&src.join("app/lib/blob"));
    assert!(!dir);
    extract(&t.0.join("blob2"), false, &s).unwrap();
    assert_eq!(
        std::fs::read(t.0.join("blob2")).unwrap(),
        std::fs::read(src.join("app/lib/blob")).unwrap()
    );
    let (s, _) = archive_of(&src.join("app/lib/blob.link"));
    std::fs::create_dir_all(t.0.join("out3")).unwrap();
    extract(&t.0.join("out3"), false, &s).unwrap();
    assert_eq!(
        std::fs::read_link(t.0.join("out3/blob.link")).unwrap(),
        Path::new("blob")
    );
}

#[test]
fn source_refuses_and_skips_special_files_without_blocking() {
    let t = tmp("source");
    let src = t.0.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), "f").unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    nix::unistd::mkfifo(&src.join("d/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("d/sock")).unwrap();
    // A named FIFO is refused (never opened: this would block).
    let e = Source::open(&src.join("fifo")).err().unwrap();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(Source::open(Path::new("/dev/null")).is_err());
    // Inside a directory, FIFOs and sockets are skipped.
    let (s, _) = archive_of(&src.join("d"));
    let dst = t.0.join("out");
    extract(&dst, true, &s).unwrap();
    assert_eq!(
        tree(&dst),
        vec!["d/ 755".to_string(), format!("d/f 644 1 {:x}", fnv(b"f"))]
    );
    // A symlink below the source is copied as a symlink, never followed.
    std::os::unix::fs::symlink("/etc", src.join("d/etc")).unwrap();
    let (s, _) = archive_of(&src.join("d"));
    let mut r = Reader::new(&s[..], lim());
    let mut n = 0;
    while let Some(e) = r.next_entry().unwrap() {
        assert!(e.path.len() <= 2, "{:?}", e.name);
        n += 1;
    }
    assert_eq!(n, 3, "d, d/etc (a symlink), d/f");
    // A missing source names the error.
    assert!(Source::open(&src.join("nope")).is_err());
    assert!(Source::open(Path::new("/tmp/..")).is_err());
}
