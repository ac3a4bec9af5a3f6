//! Droplets and app archives on the client's side.
//!
//! **Droplet** (what `warden stage` writes and `warden start` reads): a
//! gzip-compressed tar of the staging directory, as the DEA's stager packed
//! it (`cd /tmp/staged && tar -czf droplet.tgz .`): `app/` (the compiled
//! app), `logs/` (`staging_task.log`), `tmp/`, and `staging_info.yml`, a
//! YAML mapping with `buildpack_path`, `detected_buildpack` and
//! `start_command` (null when neither a Procfile nor the buildpack's
//! release named a web process). [`read`] accepts a droplet only when the
//! whole gzip stream (CRC and length included) and the tar inside it are
//! intact ([`crate::tarstream`]'s rules) and both `app/` and
//! `staging_info.yml` are there; anything else is a corrupt droplet.
//!
//! **App zip** (`warden stage APP.zip`): a zip archive as `cf push` uploads
//! it. [`unzip`] extracts stored (method 0) and deflated (method 8) entries
//! into a new directory: directories, regular files (permission bits from
//! the Unix external attributes, else 0644/0755) and symbolic links whose
//! target stays inside the tree. Every path goes through
//! [`crate::tarstream::normalize`] (no absolute path, no `..`); zip64,
//! encryption and other methods are refused with a message naming the entry.

use crate::tarstream::{self, Kind, Limits};
use flate2::read::{DeflateDecoder, GzDecoder};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest staging_info.yml read from a droplet.
const INFO_MAX: u64 = 64 * 1024;
/// Largest app zip read (it is read into memory).
const ZIP_MAX: u64 = 1 << 30;

/// Why a droplet or an app zip was refused.
#[derive(Debug, thiserror::Error)]
pub enum DropletError {
    #[error("corrupt droplet {path}: {msg}")]
    Corrupt { path: String, msg: String },
    #[error("app zip {path}: {msg}")]
    Zip { path: String, msg: String },
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// staging_info.yml.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct StagingInfo {
    pub buildpack_path: String,
    pub detected_buildpack: String,
    pub start_command: Option<String>,
}

impl StagingInfo {
    /// As Ruby's `YAML.dump` wrote it: a `---` line, then the mapping.
    pub fn to_yaml(&self) -> String {
        format!(
            "---\n{}",
            serde_yaml_ng::to_string(self).unwrap_or_default()
        )
    }
}

/// What [`read`] found in a droplet.
#[derive(Debug)]
pub struct Droplet {
    pub info: StagingInfo,
    pub bytes: u64,
}

/// Reads and checks a whole droplet.
pub fn read(path: &Path) -> Result<Droplet, DropletError> {
    let corrupt = |msg: String| DropletError::Corrupt {
        path: path.display().to_string(),
        msg,
    };
    let f = std::fs::File::open(path).map_err(|err| DropletError::Io {
        path: path.display().to_string(),
        err,
    })?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut gz = GzDecoder::new(std::io::BufReader::new(f));
    let mut info = None;
    let mut has_app = false;
    {
        let mut rd = tarstream::Reader::new(&mut gz, Limits::default());
        while let Some(e) = rd.next_entry().map_err(|e| corrupt(e.to_string()))? {
            match (e.path.as_slice(), &e.kind) {
                ([a], Kind::Dir) if a == b"app" => has_app = true,
                ([s], Kind::File { size }) if s == b"staging_info.yml" => {
                    if *size > INFO_MAX {
                        return Err(corrupt(format!(
                            "staging_info.yml is over {INFO_MAX} bytes"
                        )));
                    }
                    let mut buf = vec![0u8; *size as usize];
                    let mut at = 0;
                    while at < buf.len() {
                        let n = rd
                            .read_data(&mut buf[at..])
                            .map_err(|e| corrupt(e.to_string()))?;
                        at += n;
                    }
                    let text = String::from_utf8(buf)
                        .map_err(|_| corrupt("staging_info.yml is not UTF-8".into()))?;
                    let i: StagingInfo = serde_yaml_ng::from_str(&text)
                        .map_err(|e| corrupt(format!("staging_info.yml: {e}")))?;
                    info = Some(i);
                }
                _ => {}
            }
        }
    }
    // The rest of the gzip stream: its CRC and length are checked at its end.
    std::io::copy(&mut gz, &mut std::io::sink()).map_err(|e| corrupt(format!("gzip: {e}")))?;
    if !has_app {
        return Err(corrupt("no app/ directory".into()));
    }
    let info = info.ok_or_else(|| corrupt("no staging_info.yml".into()))?;
    Ok(Droplet { info, bytes })
}

/// Extracts an app zip into `dst` (created, must not exist).
pub fn unzip(zip: &Path, dst: &Path) -> Result<(), DropletError> {
    let bad = |msg: String| DropletError::Zip {
        path: zip.display().to_string(),
        msg,
    };
    let io = |p: &Path, err: std::io::Error| DropletError::Io {
        path: p.display().to_string(),
        err,
    };
    let mut data = Vec::new();
    std::fs::File::open(zip)
        .map_err(|e| io(zip, e))?
        .take(ZIP_MAX + 1)
        .read_to_end(&mut data)
        .map_err(|e| io(zip, e))?;
    if data.len() as u64 > ZIP_MAX {
        return Err(bad(format!("larger than {ZIP_MAX} bytes")));
    }
    let entries = central_directory(&data).map_err(bad)?;
    std::fs::create_dir(dst).map_err(|e| io(dst, e))?;
    for e in entries {
        let what = |m: &str| bad(format!("{}: {m}", tarstream::show(&e.name)));
        let parts = tarstream::normalize(&e.name, true).map_err(&what)?;
        if parts.is_empty() {
            continue;
        }
        let mut p = dst.to_path_buf();
        for c in &parts {
            p.push(OsStr::from_bytes(c));
        }
        let body = entry_data(&data, &e).map_err(|m| what(&m))?;
        let ftype = e.mode >> 12;
        let is_dir = e.name.ends_with(b"/") || ftype == 0o04;
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|err| io(parent, err))?;
        }
        if is_dir {
            std::fs::create_dir_all(&p).map_err(|err| io(&p, err))?;
            let mode = if e.mode & 0o777 != 0 {
                e.mode & 0o755
            } else {
                0o755
            };
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | 0o700));
        } else if ftype == 0o12 {
            if !tarstream::symlink_stays_inside(parts.len() - 1, &body) {
                return Err(what("symbolic link leaves the app"));
            }
            std::os::unix::fs::symlink(OsStr::from_bytes(&body), &p).map_err(|err| io(&p, err))?;
        } else if ftype == 0 || ftype == 0o10 {
            let mode = if e.mode & 0o777 != 0 {
                e.mode & 0o755
            } else {
                0o644
            };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode | 0o600)
                .open(&p)
                .map_err(|err| io(&p, err))?;
            f.write_all(&body).map_err(|err| io(&p, err))?;
        } else {
            return Err(what("not a file, directory or symbolic link"));
        }
    }
    Ok(())
}

struct ZipEntry {
    name: Vec<u8>,
    method: u16,
    flags: u16,
    csize: u64,
    usize: u64,
    crc: u32,
    local: u64,
    /// Unix mode from the external attributes (0 when not made on Unix).
    mode: u32,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn central_directory(d: &[u8]) -> Result<Vec<ZipEntry>, String> {
    let short = || "truncated central directory".to_string();
    let from = d.len().saturating_sub(22 + 65_535);
    let eocd = (from..d.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(d, i) == Some(0x0605_4b50))
        .ok_or("not a zip archive (no end of central directory)")?;
    let count = u16_at(d, eocd + 10).ok_or_else(short)?;
    let offset = u32_at(d, eocd + 16).ok_or_else(short)?;
    if count == 0xffff || offset == 0xffff_ffff {
        return Err("zip64 archives are not supported".into());
    }
    let mut at = offset as usize;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if u32_at(d, at) != Some(0x0201_4b50) {
            return Err(short());
        }
        let made_by = u16_at(d, at + 4).ok_or_else(short)?;
        let flags = u16_at(d, at + 8).ok_or_else(short)?;
        let method = u16_at(d, at + 10).ok_or_else(short)?;
        let crc = u32_at(d, at + 16).ok_or_else(short)?;
        let csize = u32_at(d, at + 20).ok_or_else(short)?;
        let usize_ = u32_at(d, at + 24).ok_or_else(short)?;
        let nlen = usize::from(u16_at(d, at + 28).ok_or_else(short)?);
        let xlen = usize::from(u16_at(d, at + 30).ok_or_else(short)?);
        let clen = usize::from(u16_at(d, at + 32).ok_or_else(short)?);
        let ext = u32_at(d, at + 38).ok_or_else(short)?;
        let local = u32_at(d, at + 42).ok_or_else(short)?;
        let name = d.get(at + 46..at + 46 + nlen).ok_or_else(short)?.to_vec();
        if csize == u32::MAX || usize_ == u32::MAX || local == u32::MAX {
            return Err("zip64 archives are not supported".into());
        }
        let mode = if made_by >> 8 == 3 { ext >> 16 } else { 0 };
        out.push(ZipEntry {
            name,
            method,
            flags,
            csize: u64::from(csize),
            usize: u64::from(usize_),
            crc,
            local: u64::from(local),
            mode,
        });
        at += 46 + nlen + xlen + clen;
    }
    Ok(out)
}

fn entry_data(d: &[u8], e: &ZipEntry) -> Result<Vec<u8>, String> {
    if e.flags & 1 != 0 {
        return Err("encrypted entries are not supported".into());
    }
    let at = e.local as usize;
    if u32_at(d, at) != Some(0x0403_4b50) {
        return Err("bad local header".into());
    }
    let nlen = usize::from(u16_at(d, at + 26).ok_or("truncated local header")?);
    let xlen = usize::from(u16_at(d, at + 28).ok_or("truncated local header")?);
    let start = at + 30 + nlen + xlen;
    let raw = d
        .get(start..start + e.csize as usize)
        .ok_or("truncated entry data")?;
    let body = match e.method {
        0 => raw.to_vec(),
        8 => {
            let mut out = Vec::new();
            DeflateDecoder::new(raw)
                .take(e.usize + 1)
                .read_to_end(&mut out)
                .map_err(|err| format!("inflate: {err}"))?;
            out
        }
        m => return Err(format!("compression method {m} is not supported")),
    };
    if body.len() as u64 != e.usize {
        return Err("size does not match the central directory".into());
    }
    let mut h = flate2::Crc::new();
    h.update(&body);
    if h.sum() != e.crc {
        return Err("CRC mismatch".into());
    }
    Ok(body)
}

/// A directory next to `near` (same filesystem, for an atomic rename),
/// removed with everything in it when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new_in(parent: &Path, tag: &str) -> std::io::Result<TempDir> {
        let mut n = 0u32;
        loop {
            let p = parent.join(format!(".warden-{tag}-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder};

    fn tmp(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag).unwrap()
    }

    fn droplet_bytes(with_app: bool, info: Option<&str>) -> Vec<u8> {
        let mut w = tarstream::Writer::new(Vec::new());
        let m = tarstream::Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        w.dir(b".", &m).unwrap();
        if with_app {
            w.dir(b"./app", &m).unwrap();
        }
        if let Some(i) = info {
            w.file(b"./staging_info.yml", &m, i.len() as u64, &mut i.as_bytes())
                .unwrap();
        }
        let tar = w.finish().unwrap();
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn reads_a_good_droplet() {
        let t = tmp("dtest");
        let p = t.0.join("d.tgz");
        let info = StagingInfo {
            buildpack_path: "/bp".into(),
            detected_buildpack: "shell".into(),
            start_command: Some("./web".into()),
        };
        assert_eq!(
            info.to_yaml(),
            "---\nbuildpack_path: /bp\ndetected_buildpack: shell\nstart_command: ./web\n"
        );
        std::fs::write(&p, droplet_bytes(true, Some(&info.to_yaml()))).unwrap();
        assert_eq!(read(&p).unwrap().info, info);
    }

    #[test]
    fn refuses_corrupt_droplets() {
        let t = tmp("dtest");
        let p = t.0.join("d.tgz");
        let good = droplet_bytes(
            true,
            Some("buildpack_path: a\ndetected_buildpack: b\nstart_command: c\n"),
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not gzip at all".to_vec(), "corrupt droplet"),
            (good[..good.len() / 2].to_vec(), "corrupt droplet"),
            (
                {
                    let mut g = good.clone();
                    let n = g.len();
                    g[n - 6] ^= 0xff; // CRC
                    g
                },
                "gzip",
            ),
            (
                droplet_bytes(false, Some("detected_buildpack: b\n")),
                "no app/",
            ),
            (droplet_bytes(true, None), "no staging_info.yml"),
            (droplet_bytes(true, Some("- a list\n")), "staging_info.yml"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains("corrupt droplet") && e.contains(want), "{e}");
        }
    }

    fn zip_of(entries: &[(&str, u32, &[u8], bool)]) -> Vec<u8> {
        // (name, unix mode, data, deflate)
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, mode, data, deflate) in entries {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let body = if *deflate {
                let mut e = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.to_vec()
            };
            let off = out.len() as u32;
            let method: u16 = if *deflate { 8 } else { 0 };
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend(20u16.to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(method.to_le_bytes());
            out.extend([0u8; 4]);
            out.extend(crc.sum().to_le_bytes());
            out.extend((body.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(&body);
            cd.extend(0x0201_4b50u32.to_le_bytes());
            cd.extend((3u16 << 8 | 20).to_le_bytes());
            cd.extend(20u16.to_le_bytes());
            cd.extend(0u16.to_le_bytes());
            cd.extend(method.to_le_bytes());
            cd.extend([0u8; 4]);
            cd.extend(crc.sum().to_le_bytes());
            cd.extend((body.len() as u32).to_le_bytes());
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((name.len() as u16).to_le_bytes());
            cd.extend([0u8; 8]);
            cd.extend((mode << 16).to_le_bytes());
            cd.extend(off.to_le_bytes());
            cd.extend(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        let n = entries.len() as u16;
        out.extend(&cd);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend(n.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend((cd.len() as u32).to_le_bytes());
        out.extend(cd_off.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    #[test]
    fn unzips_files_dirs_links() {
        let t = tmp("ztest");
        let z = t.0.join("a.zip");
        std::fs::write(
            &z,
            zip_of(&[
                ("bin/", 0o040755, b"", false),
                ("bin/run", 0o100755, b"#!/bin/sh\necho hi\n", true),
                ("README", 0o100644, b"plain", false),
                ("link", 0o120777, b"bin/run", false),
            ]),
        )
        .unwrap();
        let d = t.0.join("out");
        unzip(&z, &d).unwrap();
        assert_eq!(
            std::fs::read(d.join("bin/run")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        let mode = std::fs::metadata(d.join("bin/run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(std::fs::read(d.join("README")).unwrap(), b"plain");
        assert_eq!(
            std::fs::read_link(d.join("link")).unwrap(),
            Path::new("bin/run")
        );
    }

    #[test]
    fn unzip_refuses_escapes_and_damage() {
        let t = tmp("ztest");
        let z = t.0.join("a.zip");
        for (bytes, want) in [
            (zip_of(&[("../evil", 0o100644, b"x", false)]), "evil"),
            (zip_of(&[("/abs", 0o100644, b"x", false)]), "abs"),
            (zip_of(&[("l", 0o120777, b"../../etc", false)]), "leaves"),
            (b"PK junk".to_vec(), "not a zip"),
            (
                {
                    let mut b = zip_of(&[("f", 0o100644, b"hello", false)]);
                    b[30 + 1] ^= 1; // the data after the 30-byte header and the name "f"
                    b
                },
                "CRC",
            ),
        ] {
            std::fs::write(&z, &bytes).unwrap();
            let d = t.0.join("out");
            let _ = std::fs::remove_dir_all(&d);
            let e = unzip(&z, &d).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
