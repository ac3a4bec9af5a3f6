//! limit_disk: a per-container ext4 image, sized by the kernel.
//!
//! # Why an image per container
//! warden set user quotas on the depot's file system. Here that is not
//! possible everywhere: this project's hosts include kernels without XFS
//! quota, depots on tmpfs or ext4 without the quota feature, and, with
//! the overlay root, every write of a container reaches its upper layer
//! with the credentials of whoever mounted the overlay (root with
//! CAP_SYS_RESOURCE on a normal host), which generic (ext4) quotas exempt
//! from their hard limits. A file system of its own per container needs
//! only loop devices and ext4, present on every kernel tested, and its
//! free space is enforced for every writer, root included: a write past
//! it fails with ENOSPC (-m 0: no blocks reserved for root).
//!
//! # Layout
//! With `quota.disk_quota_enabled` (the default), create.sh makes
//! `CP/disk.img`, a sparse file of `quota.disk_image_size` bytes, formats
//! it ext4 (no journal, no reserved blocks, lazy inode tables: about 30 ms)
//! and mounts it (`mount -o loop`: the loop device is freed with the last
//! unmount) on `CP/tmp/rootfs`, which holds the overlay's `upper` and `work`
//! directories. destroy.sh unmounts it and removes the file; the start-up
//! sweep ([`sweep_loops`]) detaches loop devices still backed by an image
//! under the depot that no container owns.
//!
//! # The limit
//! A limit below the image's size is made by a ballast file,
//! `CP/tmp/rootfs/.warden-reserve` (outside `upper`, so the container
//! cannot see or remove it), allocated with fallocate to the difference:
//! the container gets `limit` bytes of the file system's blocks, counting
//! the few blocks the file system's own root directory uses. Raising the
//! limit shrinks the ballast, lowering it grows it (up to the free space: a
//! limit below what the container already uses leaves it no free block).
//! A limit of 0 or above the image's size is the image's size, the most a
//! container can get (`quota.disk_image_size`).
//!
//! Bytes convert to warden's 1 KiB quota blocks rounding up. Inodes: the
//! image has a fixed inode count (mkfs's one per 16 KiB), reported as the
//! inode hard limit; soft limits do not exist on this scheme, so a request
//! with a non-zero soft limit, or an inode limit other than the image's, is
//! refused with an error naming it (0 soft is "none").

use super::LimitError;
use crate::proto::{LimitDiskRequest, LimitDiskResponse};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// warden's quota block (the kernel's quota block size).
pub const BLOCK: u64 = 1024;
/// The ballast file in the image's root.
pub const BALLAST: &str = ".warden-reserve";
/// The image file in the container directory.
pub const IMAGE: &str = "disk.img";

/// Where a container's image is mounted.
pub fn mount_point(cp: &Path) -> PathBuf {
    cp.join("tmp/rootfs")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LimitError + '_ {
    move |err| LimitError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// True when `mnt` is the root of a file system other than its parent's
/// (the image is mounted there).
pub fn is_mounted(mnt: &Path) -> bool {
    let (Ok(m), Ok(p)) = (std::fs::metadata(mnt), std::fs::metadata(mnt.join(".."))) else {
        return false;
    };
    m.dev() != p.dev()
}

/// Usage and capacity of a mounted image.
///
/// ext4 keeps some clusters for its own metadata that no write may use
/// (s_resv_clusters, up to 16 MiB), which statvfs leaves out of f_bavail;
/// with no blocks reserved for root (-m 0), f_bavail is what any writer can
/// still allocate. So the container's limit is what it uses plus f_bavail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The most the container can get: its use, the ballast and f_bavail.
    pub capacity: u64,
    /// Bytes the ballast holds (its length: it is fully allocated).
    pub ballast: u64,
    /// Bytes used by the container (every used block but the ballast's
    /// data, so its few extent blocks count here).
    pub used: u64,
    /// Bytes still free for the container (statvfs f_bavail).
    pub avail: u64,
    pub inodes_total: u64,
    /// Inodes used, the ballast's excepted.
    pub inodes_used: u64,
}

impl Usage {
    /// The limit in force: what the container uses plus what it can still
    /// write.
    pub fn limit(&self) -> u64 {
        self.used + self.avail
    }
}

pub fn usage(mnt: &Path) -> Result<Usage, LimitError> {
    let st = nix::sys::statvfs::statvfs(mnt).map_err(|e| io(mnt)(e.into()))?;
    let bs = st.fragment_size() as u64;
    let fs_used = (st.blocks() as u64).saturating_sub(st.blocks_free() as u64) * bs;
    let avail = st.blocks_available() as u64 * bs;
    let (ballast, ballast_inode) = match std::fs::symlink_metadata(mnt.join(BALLAST)) {
        Ok(m) => (m.len(), 1),
        Err(_) => (0, 0),
    };
    let inodes_total = st.files() as u64;
    let inodes_used = inodes_total.saturating_sub(st.files_free() as u64);
    let used = fs_used.saturating_sub(ballast);
    Ok(Usage {
        capacity: used + ballast + avail,
        ballast,
        used,
        avail,
        inodes_total,
        inodes_used: inodes_used.saturating_sub(ballast_inode),
    })
}

/// Sets the byte limit of the image mounted at `mnt` (0: none, i.e. the
/// image's capacity). Returns the usage after.
pub fn set_limit(mnt: &Path, bytes: u64) -> Result<Usage, LimitError> {
    use nix::fcntl::{fallocate, FallocateFlags};
    use std::os::fd::AsRawFd;
    if !is_mounted(mnt) {
        return Err(LimitError::Disk(format!(
            "no disk image is mounted on {} (was the container made with quota.disk_quota_enabled: false?)",
            mnt.display()
        )));
    }
    let u = usage(mnt)?;
    let path = mnt.join(BALLAST);
    if bytes == 0 || bytes >= u.capacity {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        return usage(mnt);
    }
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?
    };
    let fd = f.as_raw_fd();
    let mut u = u;
    // Two rounds at most: the ballast's own extent blocks can take a block
    // or two from the container; the second round gives them back.
    for _ in 0..2 {
        let limit = u.limit();
        if limit == bytes {
            break;
        }
        let len = u.ballast;
        if limit < bytes {
            // Frees the blocks past the new length (all were allocated).
            let give = (bytes - limit).min(len);
            f.set_len(len - give).map_err(io(&path))?;
        } else {
            let take = (limit - bytes).min(u.avail);
            if let Err(e) = fallocate(fd, FallocateFlags::empty(), len as i64, take as i64) {
                if e != nix::errno::Errno::ENOSPC {
                    return Err(io(&path)(e.into()));
                }
                // The container is already past the new limit: take what
                // is free, less room for the ballast's extent blocks.
                let now = usage(mnt)?;
                let take = now.avail.saturating_sub(64 << 10);
                let len = f.metadata().map_err(io(&path))?.len();
                if take > 0 {
                    let _ = fallocate(fd, FallocateFlags::empty(), len as i64, take as i64);
                }
                return usage(mnt);
            }
        }
        u = usage(mnt)?;
    }
    Ok(u)
}

/// create.sh's `disk_image_size` setting: the image's bytes, or empty
/// (no image) with quotas disabled.
pub fn image_size(cfg: &crate::config::Config) -> String {
    if cfg.disk_quota_enabled {
        cfg.disk_image_size.to_string()
    } else {
        String::new()
    }
}

/// Bytes to warden's 1 KiB blocks, rounding up.
pub fn to_blocks(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK)
}

/// The hard byte limit a request asks for, warden's precedence: the byte
/// fields, then the block fields (the later wins). None: unchanged.
pub fn requested_bytes(r: &LimitDiskRequest) -> Option<u64> {
    let mut hard = None;
    for b in [r.byte_limit, r.byte, r.byte_hard].into_iter().flatten() {
        hard = Some(b);
    }
    for b in [r.block_limit, r.block, r.block_hard].into_iter().flatten() {
        hard = Some(b.saturating_mul(BLOCK));
    }
    hard
}

/// limit_disk on the image mounted at `mnt`.
pub fn limit(mnt: &Path, r: &LimitDiskRequest) -> Result<LimitDiskResponse, LimitError> {
    let unsupported = |what: &str| {
        LimitError::Disk(format!(
            "{what} is not supported: disk limits are enforced by each container's own file system, which has one hard limit in bytes and a fixed inode count"
        ))
    };
    if r.byte_soft.unwrap_or(0) != 0 || r.block_soft.unwrap_or(0) != 0 {
        return Err(unsupported("a soft block limit"));
    }
    if r.inode_soft.unwrap_or(0) != 0 {
        return Err(unsupported("a soft inode limit"));
    }
    let mut u = if is_mounted(mnt) {
        usage(mnt)?
    } else {
        return Err(LimitError::Disk(format!(
            "no disk image is mounted on {}",
            mnt.display()
        )));
    };
    for i in [r.inode_limit, r.inode, r.inode_hard].into_iter().flatten() {
        if i != 0 && i != u.inodes_total {
            return Err(unsupported(&format!(
                "an inode limit other than the image's {}",
                u.inodes_total
            )));
        }
    }
    if let Some(b) = requested_bytes(r) {
        u = set_limit(mnt, b)?;
    }
    Ok(response(&u))
}

pub fn response(u: &Usage) -> LimitDiskResponse {
    let limit = u.limit();
    let blocks = to_blocks(limit);
    LimitDiskResponse {
        block_limit: Some(blocks),
        block: Some(blocks),
        block_soft: Some(0),
        block_hard: Some(blocks),
        inode_limit: Some(u.inodes_total),
        inode: Some(u.inodes_total),
        inode_soft: Some(0),
        inode_hard: Some(u.inodes_total),
        byte_limit: Some(limit),
        byte: Some(limit),
        byte_soft: Some(0),
        byte_hard: Some(limit),
    }
}

/// Start-up sweep: detaches loop devices whose backing file is a
/// `DEPOT/<id>/disk.img` of no live container (`live(id)` false). Only
/// files under this server's depot are considered.
pub fn sweep_loops(depot: &Path, live: impl Fn(&str) -> bool) {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return;
    };
    let depot = depot.display().to_string();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(back) = std::fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        let back = back.trim_end();
        let back = back.strip_suffix(" (deleted)").unwrap_or(back);
        let Some(rest) = back.strip_prefix(&format!("{depot}/")) else {
            continue;
        };
        let Some(id) = rest.strip_suffix(&format!("/{IMAGE}")) else {
            continue;
        };
        if id.contains('/') || live(id) {
            continue;
        }
        log::info!("detaching stale loop device /dev/{name} ({back})");
        match crate::sh::run(
            "losetup -d",
            Path::new("losetup"),
            &["-d", &format!("/dev/{name}")],
            std::iter::empty::<(&str, &str)>(),
        ) {
            Ok(_) => {}
            Err(e) => log::warn!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_blocks() {
        let r = LimitDiskRequest {
            byte_limit: Some(2048),
            ..Default::default()
        };
        assert_eq!(requested_bytes(&r), Some(2048));
        let r = LimitDiskRequest {
            byte_limit: Some(2048),
            block_hard: Some(3),
            ..Default::default()
        };
        assert_eq!(requested_bytes(&r), Some(3072));
        assert_eq!(requested_bytes(&LimitDiskRequest::default()), None);
        assert_eq!(to_blocks(1), 1);
        assert_eq!(to_blocks(1024), 1);
        assert_eq!(to_blocks(1025), 2);
    }

    #[test]
    fn response_fields() {
        let u = Usage {
            capacity: 10 << 20,
            ballast: 8 << 20,
            used: 4096,
            avail: (2 << 20) - 4096,
            inodes_total: 640,
            inodes_used: 11,
        };
        let r = response(&u);
        assert_eq!(r.byte_limit, Some(2 << 20));
        assert_eq!(r.block_hard, Some(2048));
        assert_eq!(r.inode_hard, Some(640));
        assert_eq!(r.byte_soft, Some(0));
    }
}
