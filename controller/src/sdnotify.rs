//! systemd's readiness protocol (sd_notify(3)), without libsystemd: when
//! `NOTIFY_SOCKET` is set (a `Type=notify` unit), one datagram of
//! `KEY=VALUE` lines is sent to that unix socket (a path, or `@NAME` for
//! an abstract socket). Without it nothing is sent.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`); Ok(false) when not run by systemd.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let b = path.as_bytes();
    if let Some(name) = b.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_the_socket_systemd_names() {
        let dir = std::env::temp_dir().join(format!("sdnotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("notify.sock");
        let _ = std::fs::remove_file(&p);
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        // The only test touching NOTIFY_SOCKET in this process.
        std::env::set_var("NOTIFY_SOCKET", &p);
        assert!(super::notify("READY=1").unwrap());
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(!super::notify("READY=1").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
