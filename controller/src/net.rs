//! Networking requests: net_in (a host port forwarded to a container
//! port, through the `net_in` map of the server's nft table, made by the
//! container's net.sh). net_out joins it (issue 11).

use crate::container::{Container, State};
use crate::dispatch::{ok, Reply};
use crate::error::RequestError;
use crate::proto::{self, Type};
use crate::server::{lock, Server};
use crate::sh;

impl Server {
    /// net_in: `host_port` (else one from the pool) forwarded to
    /// `container_port` (else the same number).
    pub(crate) fn net_in(&self, c: &Container, req: &proto::NetInRequest) -> Reply {
        let _op = c.op();
        c.check_state(&[State::Active])?;
        let (host_port, pooled) = match req.host_port {
            Some(p) => (p, false),
            None => (
                lock(&self.port_pool)
                    .acquire()
                    .ok_or(RequestError::NoPort)?,
                true,
            ),
        };
        let container_port = req.container_port.unwrap_or(host_port);
        let r = if valid_port(host_port) && valid_port(container_port) {
            sh::run(
                "net.sh in",
                &c.path.join("net.sh"),
                &["in"],
                [
                    ("HOST_PORT", host_port.to_string()),
                    ("CONTAINER_PORT", container_port.to_string()),
                ],
            )
            .map_err(RequestError::from)
        } else {
            Err(RequestError::Port(host_port, container_port))
        };
        if let Err(e) = r {
            if pooled {
                lock(&self.port_pool).release(host_port);
            }
            return Err(e);
        }
        {
            let mut g = c.lock();
            if pooled {
                g.res.ports.push(host_port);
            }
            g.res.net_in.push((host_port, container_port));
        }
        let _ = c.write_snapshot();
        ok(
            Type::NetIn,
            proto::NetInResponse {
                host_port: Some(host_port),
                container_port: Some(container_port),
            },
        )
    }
}

/// A TCP port number other than 0.
fn valid_port(p: u32) -> bool {
    (1..=65535).contains(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert!(valid_port(1) && valid_port(65535));
        assert!(!valid_port(0) && !valid_port(65536));
        assert_eq!(
            RequestError::Port(0, 70000).to_string(),
            "invalid port: 0:70000"
        );
    }
}
