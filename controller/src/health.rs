//! The HTTP endpoint on `health_check_server.port` (address
//! `health_check_server.address`, default 127.0.0.1):
//!
//! - `GET /` (any path but `/metrics`): warden's health check: `200 OK`
//!   with an empty body while the server runs;
//! - `GET /metrics`: the Prometheus text of `crate::metrics`
//!   (`Content-Type: text/plain; version=0.0.4`).
//!
//! HTTP/1.0 and 1.1, `GET` and `HEAD` only (others: 405), one request per
//! connection (`Connection: close`). A request head larger than
//! [`MAX_HEAD`] bytes is refused (431), one that does not arrive within
//! [`TIMEOUT`] is dropped. Connections are served one at a time on one
//! thread, so a client can hold the endpoint for [`TIMEOUT`] at most, and
//! none can grow the server.
//!
//! Hand-written rather than a crate (tiny_http would bring four crates and
//! a thread pool): two read-only paths, no request body, no keep-alive.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest time a connection may take to send its head or read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` (port 0: any free port) and serves it on a thread of its
/// own; returns the address bound.
pub fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let bound = l.local_addr()?;
    std::thread::Builder::new()
        .name("health".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for s in l.incoming() {
                match s {
                    Ok(s) => {
                        let _ = serve(s);
                    }
                    Err(e) => {
                        log::warn!("health check: accept: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(bound)
}

/// Reads the request head (up to the blank line), bounded in size and time.
fn read_head(s: &mut TcpStream) -> Result<Vec<u8>, u16> {
    let end = Instant::now() + TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Err(408);
        }
        let n = match s.read(&mut buf) {
            Ok(0) => return Err(400),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(408),
        };
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(431);
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// (status, content type, body, send the body) for a request head.
fn answer(head: &[u8]) -> (u16, &'static str, String, bool) {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return (400, "text/plain", "bad request line\n".into(), true);
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return (400, "text/plain", "bad request line\n".into(), true);
    }
    let body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return (405, "text/plain", "only GET and HEAD\n".into(), true),
    };
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(),
            body,
        )
    } else {
        (200, "text/plain", String::new(), body)
    }
}

fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_write_timeout(Some(TIMEOUT))?;
    let (code, ctype, body, send_body) = match read_head(&mut s) {
        Ok(head) => answer(&head),
        Err(408) => return Ok(()),
        Err(code) => (code, "text/plain", String::new(), true),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    s.write_all(&out)?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let (c, _, b, send) = answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((c, b.as_str(), send), (200, "", true));
        let (c, t, _, send) = answer(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!((c, send), (200, false));
        assert!(t.starts_with("text/plain; version=0.0.4"));
        assert_eq!(answer(b"POST / HTTP/1.1\r\n\r\n").0, 405);
        assert_eq!(answer(b"GET /\r\n\r\n").0, 400);
        assert_eq!(answer(b"GET / SPDY/3\r\n\r\n").0, 400);
    }

    #[test]
    fn served_over_tcp_and_bounded() {
        let a = start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "{r}"
        );
        // A head that never ends is refused once it passes MAX_HEAD.
        let mut s = TcpStream::connect(a).unwrap();
        let _ = s.write_all(&vec![b'a'; MAX_HEAD + 2048]);
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    }
}
