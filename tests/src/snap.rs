//! Snapshots of host files and directories, to prove an attack changed
//! nothing: [`snap`] records what must not change about one path,
//! [`snap_tree`] a directory and everything directly in it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a host file or directory looks like: kind, mode, owner, inode, link
/// count, mtime, ctime, content (files) and names (directories, one level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub ino: u64,
    pub nlink: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub content: Vec<u8>,
    pub names: Vec<String>,
}

/// Snapshot of `p` (not following a symlink at `p`).
pub fn snap(p: &Path) -> Snap {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    };
    let mut names: Vec<String> = if ft.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    } else {
        Vec::new()
    };
    names.sort();
    Snap {
        kind,
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        ino: m.ino(),
        nlink: m.nlink(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content: if ft.is_file() {
            std::fs::read(p).unwrap()
        } else {
            Vec::new()
        },
        names,
    }
}

/// Snapshots of `dir` and of everything directly in it.
pub fn snap_tree(dir: &Path) -> BTreeMap<PathBuf, Snap> {
    let mut m = BTreeMap::new();
    m.insert(dir.to_path_buf(), snap(dir));
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        m.insert(e.path(), snap(&e.path()));
    }
    m
}
