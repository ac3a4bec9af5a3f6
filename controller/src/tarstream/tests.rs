//! Unit tests of the tar reader and writer, and a mutation harness: random,
//! corrupted and truncated streams never panic, never pass the limits, and
//! never yield an entry the format refuses.

use super::writer::put_num;
use super::*;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;

fn lim() -> Limits {
    Limits {
        max_bytes: 1 << 30,
        max_entries: 10_000,
    }
}

/// Every entry of `stream`, data included (`(entry, data)`), or the error.
fn read_all(stream: &[u8], l: Limits) -> Result<Vec<(Entry, Vec<u8>)>, Error> {
    let mut r = Reader::new(stream, l);
    let mut v = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut data = Vec::new();
        if matches!(e.kind, Kind::File { .. }) {
            let mut buf = [0u8; 333];
            loop {
                let n = r.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
        }
        v.push((e, data));
    }
    Ok(v)
}

fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u64 = h[..BLOCK].iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn end() -> Vec<u8> {
    vec![0u8; 2 * BLOCK]
}

fn one(h: [u8; BLOCK], data: &[u8]) -> Vec<u8> {
    let mut v = h.to_vec();
    v.extend_from_slice(data);
    v.resize(v.len() + pad_of(data.len() as u64) as usize, 0);
    v.extend(end());
    v
}

fn refused(stream: &[u8]) -> Error {
    match read_all(stream, lim()) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e,
    }
}

fn comps(s: &str) -> Vec<Vec<u8>> {
    s.split('/').map(|c| c.as_bytes().to_vec()).collect()
}

#[test]
fn numbers() {
    assert_eq!(num(b"0000644\0"), Ok(0o644));
    assert_eq!(num(b"  644 \0"), Ok(0o644));
    assert_eq!(num(b"\0\0\0\0"), Ok(0));
    assert_eq!(num(b"00000000017\0"), Ok(15));
    assert!(num(b"0009\0").is_err());
    assert!(num(b"12x4\0").is_err());
    assert!(num(b"7777777777777777777777777").is_err(), "overflow");
    let mut f = [0u8; 12];
    f[0] = 0x80;
    f[11] = 1;
    f[10] = 2;
    assert_eq!(num(&f), Ok(0x0201));
    f[0] = 0xff;
    assert!(num(&f).is_err(), "negative base-256");
    let mut big = [0xffu8; 12];
    big[0] = 0x80;
    assert!(num(&big).is_err(), "base-256 overflow");
    for v in [
        0,
        1,
        0o7777,
        8 << 30,
        (8 << 30) - 1,
        u64::from(u32::MAX),
        1 << 50,
    ] {
        let mut f = [0u8; 12];
        put_num(&mut f, v);
        assert_eq!(num(&f), Ok(v), "{v}");
        let mut g = [0u8; 8];
        if v < 1 << 56 {
            put_num(&mut g, v);
            assert_eq!(num(&g), Ok(v), "{v} in 8 bytes");
        }
    }
}

#[test]
fn normalize_rules() {
    assert_eq!(normalize(b"a/b", false), Ok(comps("a/b")));
    assert_eq!(normalize(b"./a//b/./", true), Ok(comps("a/b")));
    assert_eq!(normalize(b"./", true), Ok(vec![]));
    assert_eq!(normalize(b".", true), Ok(vec![]));
    assert!(normalize(b".", false).is_err());
    assert!(normalize(b"", true).is_err());
    assert!(normalize(b"/etc/passwd", false).is_err());
    assert!(normalize(b"../escape", false).is_err());
    assert!(normalize(b"a/../../escape", false).is_err());
    assert!(normalize(b"a/..", false).is_err());
    assert!(normalize(b"a\0b", false).is_err());
    assert!(normalize(&[b'x'; 256], false).is_err());
    assert!(normalize(&[b'x'; 255], false).is_ok());
    let deep = "a/".repeat(DEPTH_MAX + 1);
    assert!(normalize(deep.as_bytes(), false).is_err());
    let long = vec![b'a'; PATH_MAX + 1];
    assert!(normalize(&long, false).is_err());
}

#[test]
fn symlink_containment() {
    for (depth, t, ok) in [
        (0, "x", true),
        (0, "./x/y", true),
        (0, ".", true),
        (0, "..", false),
        (0, "../x", false),
        (1, "..", true),
        (1, "../x", true),
        (1, "../../x", false),
        (2, "../../lib/x.so", true),
        (2, "a/../../x", false),
        (3, "../a/..", false),
        (0, "/", false),
        (0, "/etc/shadow", false),
        (5, "/x", false),
        (0, "", false),
        (1, "x\0y", false),
    ] {
        assert_eq!(
            symlink_stays_inside(depth, t.as_bytes()),
            ok,
            "depth {depth} target {t:?}"
        );
    }
}

#[test]
fn show_escapes() {
    assert_eq!(show(b"a\nb"), "\"a\\nb\"");
    assert_eq!(show(b"\xff"), "\"\u{fffd}\"");
    assert!(show(&[b'x'; 1000]).len() < 220);
}

#[test]
fn writer_round_trip() {
    let long_dir = "d".repeat(150);
    let long_file = format!("{long_dir}/{}", "f".repeat(200));
    let long_target = "t/".repeat(80);
    let mut w = Writer::new(Vec::new());
    let m = |mode| Meta {
        mode,
        uid: 1000,
        gid: 1000,
        mtime: 1_700_000_000,
    };
    w.dir(b"top", &m(0o755)).unwrap();
    w.file(b"top/a", &m(0o644), 5, &mut &b"hello"[..]).unwrap();
    w.file(b"top/empty", &m(0o600), 0, &mut &b""[..]).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    w.file(b"top/big", &m(0o755), big.len() as u64, &mut &big[..])
        .unwrap();
    w.symlink(b"top/l", b"a", &m(0o777)).unwrap();
    w.dir(format!("top/{long_dir}").as_bytes(), &m(0o700))
        .unwrap();
    w.file(
        format!("top/{long_file}").as_bytes(),
        &m(0o640),
        3,
        &mut &b"abc"[..],
    )
    .unwrap();
    w.symlink(b"top/ll", long_target.as_bytes(), &m(0o777))
        .unwrap();
    let stream = w.finish().unwrap();
    let v = read_all(&stream, lim()).unwrap();
    let names: Vec<String> = v
        .iter()
        .map(|(e, _)| {
            e.path
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "top".to_string(),
            "top/a".into(),
            "top/empty".into(),
            "top/big".into(),
            "top/l".into(),
            format!("top/{long_dir}"),
            format!("top/{long_file}"),
            "top/ll".into(),
        ]
    );
    assert_eq!(v[0].0.kind, Kind::Dir);
    assert_eq!(v[0].0.mode, 0o755);
    assert_eq!(v[1].1, b"hello");
    assert_eq!(v[1].0.mtime, 1_700_000_000);
    assert_eq!(v[2].0.kind, Kind::File { size: 0 });
    assert_eq!(v[2].0.mode, 0o600);
    assert_eq!(v[3].1, big);
    assert_eq!(
        v[4].0.kind,
        Kind::Symlink {
            target: b"a".to_vec()
        }
    );
    assert_eq!(v[6].1, b"abc");
    assert_eq!(
        v[7].0.kind,
        Kind::Symlink {
            target: long_target.into_bytes()
        }
    );
    // Writing a file shorter than announced fails.
    let mut w = Writer::new(Vec::new());
    assert!(w.file(b"x", &m(0o644), 10, &mut &b"abc"[..]).is_err());
}

/// Archives made by the host's GNU tar (gnu, pax, ustar formats) and
/// busybox tar read back with the same names, data and link targets.
#[test]
fn reads_gnu_and_busybox_tar() {
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("tarstream-ut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _gone = Gone(dir.clone());
    let src = dir.join("src");
    let long = "n".repeat(120);
    std::fs::create_dir_all(src.join(&long).join("sub")).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    std::fs::write(src.join(&long).join("sub").join(&long), b"deep").unwrap();
    std::os::unix::fs::symlink("f", src.join("l")).unwrap();
    std::os::unix::fs::symlink(
        "../".to_string() + &"x".repeat(110),
        src.join(&long).join("ll"),
    )
    .unwrap();
    std::fs::hard_link(src.join("f"), src.join("h")).unwrap();
    let mut runs: Vec<(&str, Vec<String>)> = vec![];
    for fmt in ["gnu", "pax", "ustar", "posix"] {
        runs.push((
            "tar",
            vec![format!("--format={fmt}"), "-cf".into(), "-".into()],
        ));
    }
    if Path::new("/bin/busybox").exists() {
        runs.push(("/bin/busybox", vec!["tar".into(), "-cf".into(), "-".into()]));
    }
    for (prog, args) in runs {
        let out = Command::new(prog)
            .args(&args)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .output()
            .unwrap();
        if args[0] == "--format=ustar" {
            // ustar cannot hold the 120-byte name component: tar says so.
            continue;
        }
        assert!(
            out.status.success(),
            "{prog} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = read_all(&out.stdout, lim()).unwrap_or_else(|e| panic!("{prog} {args:?}: {e}"));
        let find = |p: &str| {
            v.iter()
                .find(|(e, _)| e.path == comps(p))
                .unwrap_or_else(|| panic!("{prog} {args:?}: no {p}"))
        };
        let (fe, he) = (find("f"), find("h"));
        let data = if matches!(fe.0.kind, Kind::Hardlink { .. }) {
            &he.1
        } else {
            &fe.1
        };
        assert_eq!(data, b"data");
        assert_eq!(find(&format!("{long}/sub/{long}")).1, b"deep");
        assert_eq!(
            find("l").0.kind,
            Kind::Symlink {
                target: b"f".to_vec()
            }
        );
        assert_eq!(
            find(&format!("{long}/ll")).0.kind,
            Kind::Symlink {
                target: format!("../{}", "x".repeat(110)).into_bytes()
            }
        );
        // One of f and h is a hard link to the other.
        let (f, h) = (&find("f").0.kind, &find("h").0.kind);
        assert!(
            matches!(h, Kind::Hardlink { target } if *target == comps("f"))
                || matches!(f, Kind::Hardlink { target } if *target == comps("h")),
            "{prog} {args:?}: {f:?} {h:?}"
        );
        assert!(v
            .iter()
            .any(|(e, _)| e.path.is_empty() && e.kind == Kind::Dir));
    }
}

#[test]
fn refuses_special_files_and_bad_paths() {
    // Special files are read (the copy names and leaves them out).
    for (ty, what) in [
        (b'3', "character device"),
        (b'4', "block device"),
        (b'6', "FIFO"),
    ] {
        let v = read_all(&one(raw_header(b"dev/x", ty, 0o666, 0, b""), b""), lim()).unwrap();
        assert_eq!(v[0].0.kind, Kind::Special { what });
        let e = refused(&one(raw_header(b"dev/x", ty, 0o666, 3, b""), b"abc"));
        assert_eq!(e.msg, "non-file entry with data");
    }
    for (ty, what) in [
        (b'S', "sparse file refused"),
        (b'D', "entry type 'D' refused"),
        (b'V', "entry type 'V' refused"),
        (b'M', "entry type 'M' refused"),
        (b'N', "entry type 'N' refused"),
    ] {
        let e = refused(&one(raw_header(b"dev/x", ty, 0o666, 0, b""), b""));
        assert_eq!(e.entry.as_deref(), Some("\"dev/x\""), "{e}");
        assert_eq!(e.msg, what);
    }
    for (name, ty) in [
        (&b"/etc/passwd"[..], b'0'),
        (b"../escape", b'0'),
        (b"a/../../escape", b'5'),
        (b"./..", b'5'),
        (b"f/", b'0'),
        (b".", b'0'),
        (b"", b'0'),
    ] {
        let e = refused(&one(raw_header(name, ty, 0o644, 0, b""), b""));
        assert!(e.entry.is_some(), "{e}");
    }
    // Hard links leaving the archive.
    for t in [&b"/etc/shadow"[..], b"../x", b""] {
        let e = refused(&one(raw_header(b"h", b'1', 0o644, 0, t), b""));
        assert!(e.msg.contains("hard link target"), "{e}");
    }
    // A symlink without a target; a directory or link carrying data.
    assert!(refused(&one(raw_header(b"l", b'2', 0o777, 0, b""), b""))
        .msg
        .contains("empty target"));
    let e = refused(&one(raw_header(b"d", b'5', 0o755, 3, b""), b"abc"));
    assert_eq!(e.msg, "non-file entry with data");
    // Not a tar stream at all; a v7 header; a bad checksum.
    assert!(refused(&[b'x'; 2048]).msg.contains("checksum"));
    let mut v7 = raw_header(b"f", b'0', 0o644, 0, b"");
    v7[257..265].fill(0);
    fix_checksum(&mut v7);
    assert!(refused(&one(v7, b"")).msg.contains("not a ustar"));
    let mut bad = raw_header(b"f", b'0', 0o644, 0, b"");
    bad[0] = b'g';
    assert!(refused(&one(bad, b"")).msg.contains("checksum"));
}

#[test]
fn posix_prefix_is_joined_and_gnu_is_not() {
    let mut h = raw_header(b"name", b'0', 0o644, 0, b"");
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[345..351].copy_from_slice(b"prefix");
    fix_checksum(&mut h);
    let v = read_all(&one(h, b""), lim()).unwrap();
    assert_eq!(v[0].0.path, comps("prefix/name"));
    // GNU: bytes 345.. are atime etc., never part of the name.
    let mut h = raw_header(b"name", b'0', 0o644, 0, b"");
    h[345..351].copy_from_slice(b"prefix");
    fix_checksum(&mut h);
    let v = read_all(&one(h, b""), lim()).unwrap();
    assert_eq!(v[0].0.path, comps("name"));
    // The prefix can not smuggle an absolute path.
    let mut h = raw_header(b"name", b'0', 0o644, 0, b"");
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[345..349].copy_from_slice(b"/etc");
    fix_checksum(&mut h);
    assert!(refused(&one(h, b"")).msg.contains("absolute"));
}

fn pax(records: &[(&str, &[u8])], global: bool) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body_len = k.len() + v.len() + 3; // ' ' '=' '\n'
        let mut n = body_len + 1;
        while format!("{n}").len() + body_len != n {
            n += 1;
        }
        data.extend_from_slice(format!("{n} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut v = raw_header(
        b"pax",
        if global { b'g' } else { b'x' },
        0o644,
        data.len() as u64,
        b"",
    )
    .to_vec();
    v.extend_from_slice(&data);
    v.resize(v.len() + pad_of(data.len() as u64) as usize, 0);
    v
}

#[test]
fn pax_headers() {
    // path, linkpath, size, mtime apply to the next entry only.
    let mut s = pax(
        &[
            ("path", b"long/pax/name"),
            ("mtime", b"1234.5"),
            ("SCHILY.xattr.security.capability", b"\x01\x02"),
            ("uid", b"0"),
        ],
        false,
    );
    s.extend(raw_header(b"short", b'0', 0o4755, 3, b""));
    s.extend(b"abc");
    s.resize(s.len() + BLOCK - 3, 0);
    s.extend(pax(&[("linkpath", b"target/of/link")], false));
    s.extend(raw_header(b"lnk", b'2', 0o777, 0, b"ignored"));
    s.extend(pax(&[("size", b"5")], false));
    s.extend(raw_header(b"sized", b'0', 0o644, 0, b""));
    s.extend(b"12345");
    s.resize(s.len() + BLOCK - 5, 0);
    s.extend(raw_header(b"plain", b'0', 0o644, 0, b""));
    s.extend(end());
    let v = read_all(&s, lim()).unwrap();
    assert_eq!(v[0].0.path, comps("long/pax/name"));
    assert_eq!(v[0].0.mtime, 1234);
    assert_eq!(
        v[0].0.mode, 0o4755,
        "the reader passes modes on; copy masks them"
    );
    assert_eq!(v[0].1, b"abc");
    assert_eq!(
        v[1].0.kind,
        Kind::Symlink {
            target: b"target/of/link".to_vec()
        }
    );
    assert_eq!(v[2].1, b"12345");
    assert_eq!(v[3].0.path, comps("plain"));
    // A pax path is checked like any other.
    let mut s = pax(&[("path", b"/etc/cron.d/x")], false);
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert!(refused(&s).msg.contains("absolute"));
    let mut s = pax(&[("path", b"a\0b")], false);
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert!(refused(&s).msg.contains("NUL"));
    // Sparse files, globals that rename, malformed records.
    let mut s = pax(&[("GNU.sparse.size", b"100")], false);
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert!(refused(&s).msg.contains("sparse"));
    let mut s = pax(&[("path", b"x")], true);
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert!(refused(&s).msg.contains("global"));
    let mut s = pax(&[("comment", b"made by git")], true);
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert_eq!(read_all(&s, lim()).unwrap().len(), 1);
    for bad in [
        &b"99 path=x\n"[..],
        b"5 a\n",
        b"x path=y\n",
        b"8 path=y",
        b"0 =\n",
    ] {
        let mut s = raw_header(b"pax", b'x', 0o644, bad.len() as u64, b"").to_vec();
        s.extend_from_slice(bad);
        s.resize(BLOCK * 2, 0);
        s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
        assert!(
            read_all(&s, lim()).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Too large a pax header is refused before it is read.
    let s = raw_header(b"pax", b'x', 0o644, PAX_MAX + 1, b"").to_vec();
    assert!(refused(&s).msg.contains("extended header of"));
    // GNU long names are capped too.
    let s = raw_header(b"././@LongLink", b'L', 0o644, PATH_MAX as u64 + 2, b"").to_vec();
    assert!(refused(&s).msg.contains("extended header of"));
    // An endless run of extended headers.
    let mut s = Vec::new();
    for _ in 0..=META_RUN_MAX {
        s.extend(pax(&[("comment", b"x")], false));
    }
    s.extend(one(raw_header(b"x", b'0', 0o644, 0, b""), b""));
    assert!(refused(&s).msg.contains("too many extended headers"));
    // An extended header right before the end.
    let mut s = pax(&[("path", b"x")], false);
    s.extend(end());
    assert!(refused(&s).msg.contains("after an extended header"));
}

#[test]
fn limits_and_truncation() {
    // Entry count.
    let mut s = Vec::new();
    for i in 0..4 {
        s.extend(raw_header(format!("f{i}").as_bytes(), b'0', 0o644, 0, b""));
    }
    s.extend(end());
    let l = Limits {
        max_bytes: 1 << 20,
        max_entries: 3,
    };
    let e = read_all(&s, l).unwrap_err();
    assert_eq!(e.entry.as_deref(), Some("\"f3\""));
    assert!(e.msg.contains("more than 3 entries"), "{e}");
    assert_eq!(
        read_all(
            &s,
            Limits {
                max_entries: 4,
                ..l
            }
        )
        .unwrap()
        .len(),
        4
    );
    // A size claim over the byte limit is refused at the header.
    let s = raw_header(b"huge", b'0', 0o644, 1 << 40, b"").to_vec();
    let e = read_all(&s, l).unwrap_err();
    assert!(e.msg.contains("exceeds the copy limit"), "{e}");
    // Data beyond the limit.
    let s = one(raw_header(b"f", b'0', 0o644, 4096, b""), &[7u8; 4096]);
    let e = read_all(
        &s,
        Limits {
            max_bytes: 4096,
            max_entries: 10,
        },
    )
    .unwrap_err();
    assert!(e.msg.contains("exceed"), "{e}");
    // Every truncation of a good stream is an error, never an entry list
    // that looks complete (except the ones that keep the end block).
    let mut w = Writer::new(Vec::new());
    w.dir(b"d", &Meta::default()).unwrap();
    w.file(b"d/f", &Meta::default(), 700, &mut &[1u8; 700][..])
        .unwrap();
    w.symlink(b"d/l", &[b'x'; 150], &Meta::default()).unwrap();
    let full = w.finish().unwrap();
    let body = full.len() - 2 * BLOCK;
    for cut in 0..full.len() {
        let r = read_all(&full[..cut], lim());
        if cut < body + BLOCK {
            let e = r.unwrap_err();
            assert!(e.msg.contains("truncated"), "cut {cut}: {e}");
        } else {
            assert_eq!(r.unwrap().len(), 3, "cut {cut}");
        }
    }
    // Trailing data after the end block: some padding is fine, a flood is not.
    let mut s = full.clone();
    s.extend(vec![0u8; 10240]);
    assert_eq!(read_all(&s, lim()).unwrap().len(), 3);
    let mut s = full.clone();
    s.extend(vec![1u8; TRAILER_MAX as usize + 1]);
    assert!(read_all(&s, lim())
        .unwrap_err()
        .msg
        .contains("after the end"));
}

/// An endless stream (a reader that never ends) is cut off by the limits.
#[test]
fn endless_streams_stop_at_the_limits() {
    struct Cycle(Vec<u8>, usize);
    impl Read for Cycle {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = b.len().min(self.0.len() - self.1);
            b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 = (self.1 + n) % self.0.len();
            Ok(n)
        }
    }
    let l = Limits {
        max_bytes: 1 << 20,
        max_entries: 1 << 30,
    };
    // Endless empty files.
    let mut r = Reader::new(Cycle(raw_header(b"f", b'0', 0o644, 0, b"").to_vec(), 0), l);
    let e = loop {
        match r.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("ended"),
            Err(e) => break e,
        }
    };
    assert!(e.msg.contains("exceeds"), "{e}");
    assert!(r.bytes_read() <= l.max_bytes + BLOCK as u64);
    // An endless end-of-archive trailer.
    let mut r = Reader::new(Cycle(vec![0u8; BLOCK], 0), l);
    assert!(r.next_entry().is_err());
}

// ------------------------------------------------------- mutation harness

/// xorshift64*: deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid archive of random entries.
pub(crate) fn random_archive(rng: &mut Rng) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let long = "long/".repeat(30);
    let names = ["a", "b", "dir", "x/y", long.as_str(), "..", "/abs"];
    w.dir(b"dir", &Meta::default()).unwrap();
    for _ in 0..rng.below(8) {
        let n = names[rng.below(names.len())].as_bytes();
        let m = Meta {
            mode: rng.next() as u32 & 0o7777,
            ..Meta::default()
        };
        match rng.below(5) {
            0 => w.dir(n, &m).unwrap(),
            1 => w
                .symlink(n, names[rng.below(names.len())].as_bytes(), &m)
                .unwrap(),
            2 => {
                let ty = [b'1', b'3', b'4', b'6', b'x', b'L', b'K', b'g'][rng.below(8)];
                w.raw(&raw_header(n, ty, m.mode, 0, b"dir")).unwrap()
            }
            _ => {
                let len = rng.below(3000);
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                w.file(n, &m, len as u64, &mut &data[..]).unwrap()
            }
        }
    }
    w.finish().unwrap()
}

/// One random corruption of `s`; `header_aware` ones recompute checksums so
/// the damage reaches the field parsers.
pub(crate) fn mutate(rng: &mut Rng, s: &mut Vec<u8>) {
    if s.is_empty() {
        s.push(rng.next() as u8);
        return;
    }
    let blocks = s.len().div_ceil(BLOCK);
    match rng.below(9) {
        0 => {
            let i = rng.below(s.len());
            s[i] ^= 1 << rng.below(8);
        }
        1 => s.truncate(rng.below(s.len())),
        2 => {
            let i = rng.below(s.len());
            let n = rng.below(64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            s.splice(i..i, junk);
        }
        3..=5 => {
            // A field of a header block, checksum fixed afterwards.
            let b = rng.below(blocks) * BLOCK;
            if b + BLOCK > s.len() {
                return;
            }
            let fields: [(usize, usize); 8] = [
                (0, 100),
                (100, 8),
                (124, 12),
                (136, 12),
                (156, 1),
                (157, 100),
                (257, 8),
                (345, 155),
            ];
            let (off, len) = fields[rng.below(fields.len())];
            match rng.below(4) {
                0 => s[b + off..b + off + len].fill(0xff),
                1 => {
                    for i in 0..len {
                        s[b + off + i] = rng.next() as u8;
                    }
                }
                2 => {
                    let v = format!("{:o}", rng.next() >> rng.below(64));
                    let v = v.as_bytes();
                    let n = v.len().min(len);
                    s[b + off..b + off + n].copy_from_slice(&v[..n]);
                }
                _ => s[b + off] = b"0123456789xgLKSD/."[rng.below(18)],
            }
            fix_checksum(&mut s[b..b + BLOCK]);
        }
        6 => {
            // Duplicate a block elsewhere.
            let from = rng.below(blocks) * BLOCK;
            let to = rng.below(blocks) * BLOCK;
            if from + BLOCK <= s.len() {
                let blk = s[from..from + BLOCK].to_vec();
                s.splice(to..to, blk);
            }
        }
        7 => {
            let b = rng.below(blocks) * BLOCK;
            let end = (b + BLOCK).min(s.len());
            s[b..end].fill(0);
        }
        _ => {
            let n = rng.below(4 * BLOCK);
            s.extend((0..n).map(|_| rng.next() as u8));
        }
    }
}

/// Runs a reader over `s` to its end; checks the invariants every accepted
/// entry and every bound must keep. Returns the entries read and whether
/// the stream was accepted to its end.
pub(crate) fn check_stream(s: &[u8], l: Limits) -> (u64, bool) {
    let mut ok = false;
    let mut r = Reader::new(s, l);
    let mut buf = [0u8; 1000];
    loop {
        match r.next_entry() {
            Ok(None) => {
                ok = true;
                break;
            }
            Err(_) => break,
            Ok(Some(e)) => {
                assert!(e.path.len() <= DEPTH_MAX);
                let total: usize = e.path.iter().map(|c| c.len() + 1).sum();
                assert!(total <= PATH_MAX + 1);
                for c in &e.path {
                    assert!(!c.is_empty() && c != b"." && c != b"..");
                    assert!(!c.contains(&b'/') && !c.contains(&0));
                    assert!(c.len() <= NAME_MAX);
                }
                assert!(e.mode <= 0o7777);
                match &e.kind {
                    Kind::Symlink { target } => {
                        assert!(!target.is_empty() && target.len() <= PATH_MAX + 1)
                    }
                    Kind::Hardlink { target } => assert!(!target.is_empty()),
                    Kind::Dir | Kind::Special { .. } => {}
                    Kind::File { .. } => {
                        while let Ok(n) = r.read_data(&mut buf) {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
                if e.path.is_empty() {
                    assert_eq!(e.kind, Kind::Dir);
                }
            }
        }
        assert!(r.bytes_read() <= l.max_bytes);
        assert!(r.entries() <= l.max_entries);
    }
    assert!(r.bytes_read() <= s.len() as u64);
    (r.entries(), ok)
}

/// Iterations of the mutation harness: `WARDEN_FUZZ_ITERS`, else 3000.
pub(crate) fn iterations() -> u64 {
    std::env::var("WARDEN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn mutated_streams_never_panic_or_pass_the_bounds() {
    let l = Limits {
        max_bytes: 64 * 1024,
        max_entries: 20,
    };
    let (mut entries, mut accepted) = (0, 0);
    for seed in 0..iterations() {
        let mut rng = Rng::new(seed);
        let mut s = random_archive(&mut rng);
        for _ in 0..1 + rng.below(6) {
            mutate(&mut rng, &mut s);
        }
        let (n, ok) = check_stream(&s, l);
        entries += n;
        accepted += u64::from(ok);
    }
    // The mutations must reach past the first header, and some streams
    // must survive them, or the harness tests nothing.
    assert!(entries > iterations(), "{entries} entries read");
    assert!(accepted > iterations() / 50, "{accepted} streams accepted");
    eprintln!(
        "{} streams: {entries} entries read, {accepted} accepted",
        iterations()
    );
}

#[test]
fn random_bytes_never_panic() {
    for seed in 0..iterations() / 3 {
        let mut rng = Rng::new(seed ^ 0xdead_beef);
        let n = rng.below(4 * BLOCK);
        let s: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        check_stream(&s, lim());
    }
}
