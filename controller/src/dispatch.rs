//! Serving one connection: requests are read (crate::conn), routed by
//! type to their handler, and answered in order. A handler's
//! [`RequestError`] becomes an ErrorResponse carrying its text.
//!
//! Routing is the table in [`Server::route`]: one line per request type,
//! calling the handler in the module that owns it (lifecycle, jobs, copy,
//! net).

use crate::container::{Container, State};
use crate::error::{required, RequestError};
use crate::proto::{self, FrameError, Type};
use crate::server::{lock, spawn_thread, Server};
use prost::Message as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A response (type and encoded body), or why the request failed.
pub type Reply = Result<(Type, Vec<u8>), RequestError>;

pub fn ok<M: prost::Message>(t: Type, m: M) -> Reply {
    Ok((t, m.encode_to_vec()))
}

/// Decodes a request payload, naming the message when it cannot.
fn dec<M: prost::Message + Default>(p: &[u8], what: &str) -> Result<M, RequestError> {
    proto::decode_request(p).map_err(|err| RequestError::Undecodable {
        what: what.into(),
        err,
    })
}

/// The containers a connection referenced (for the grace timer).
type Refs = Vec<Arc<Container>>;

impl Server {
    /// Serves one client until it disconnects.
    pub fn serve(self: &Arc<Self>, stream: UnixStream) {
        let Ok(rd) = stream.try_clone() else { return };
        let mut rd = crate::conn::RequestReader::new(rd, self.limits());
        let mut w = stream;
        let mut refs: Refs = Vec::new();
        while !self.draining() {
            let m = match rd.read() {
                Ok(p) => proto::Message::decode(p.as_slice()).map_err(FrameError::from),
                Err(e) => Err(e),
            };
            let m = match m {
                Ok(m) => m,
                Err(FrameError::Eof) | Err(FrameError::Io(_)) => break,
                Err(FrameError::Decode(e)) => {
                    if send_error(&mut w, &format!("undecodable message: {e}")).is_err() {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    // A bounded error reply: the client may not be reading.
                    log::warn!(
                        "client {}: {e}; closing the connection",
                        crate::server::peer(&w)
                    );
                    let _ = w.set_write_timeout(Some(Duration::from_secs(5)));
                    let _ = send_error(&mut w, &format!("protocol error: {e}"));
                    break;
                }
            };
            if self.draining() {
                break;
            }
            *lock(&self.busy) += 1;
            let r = self.handle(m, &mut w, &mut refs);
            *lock(&self.busy) -= 1;
            self.idle.notify_all();
            if r.is_err() {
                break;
            }
        }
        for c in refs {
            let mut g = lock(&c.grace);
            g.conns = g.conns.saturating_sub(1);
            if g.conns == 0 {
                g.idle_since = Some(Instant::now());
            }
        }
    }

    /// Answers one request; an error when the connection must close.
    fn handle(
        self: &Arc<Self>,
        m: proto::Message,
        w: &mut UnixStream,
        refs: &mut Refs,
    ) -> std::io::Result<()> {
        let raw = m.r#type.unwrap_or(0);
        let payload = m.payload.unwrap_or_default();
        let reply = match Type::try_from(raw) {
            Err(_) => Err(RequestError::UnknownType(raw)),
            // Stream answers with many frames, written as they come.
            Ok(Type::Stream) => match self.stream_request(&payload, w, refs) {
                Ok(()) => return Ok(()),
                Err(e) => Err(e),
            },
            Ok(ty) => self.route(ty, &payload, refs),
        };
        match reply {
            Ok((t, body)) => {
                let env = proto::Message {
                    r#type: Some(t as i32),
                    payload: Some(body),
                };
                proto::write_frame(w, &env.encode_to_vec())
            }
            // A link/run/stream broken by drain: the connection closes with
            // no response (warden's clients see EOF).
            Err(RequestError::Draining) => Err(std::io::ErrorKind::Interrupted.into()),
            Err(e) => send_error(w, &e.to_string()),
        }
    }

    /// The container a request names, referenced by this connection.
    fn container_for(
        &self,
        handle: &Option<String>,
        msg: &str,
        refs: &mut Refs,
    ) -> Result<Arc<Container>, RequestError> {
        let h = required(handle, msg, "handle")?;
        let c = self.lookup(h)?;
        self.reference(refs, &c);
        Ok(c)
    }

    /// The routing table: request type -> handler.
    fn route(self: &Arc<Self>, ty: Type, p: &[u8], refs: &mut Refs) -> Reply {
        match ty {
            Type::Ping => ok(ty, proto::PingResponse {}),
            Type::List => ok(
                ty,
                proto::ListResponse {
                    handles: self.handles(),
                },
            ),
            Type::Echo => echo(p),
            Type::Create => self.create_request(p, refs),
            Type::Stop => self.stop_request(p, refs),
            Type::Destroy => self.destroy_request(p, refs),
            Type::Info => self.info_request(p, refs),
            Type::Spawn => self.spawn_request(p, refs),
            Type::Link => self.link_request(p, refs),
            Type::Run => self.run_request(p, refs),
            Type::NetIn => self.net_in_request(p, refs),
            Type::CopyIn => self.copy_in_request(p, refs),
            Type::CopyOut => self.copy_out_request(p, refs),
            Type::NetOut => self.not_implemented(ty, p, refs),
            Type::LimitMemory => self.not_implemented(ty, p, refs),
            Type::LimitDisk => self.not_implemented(ty, p, refs),
            Type::LimitBandwidth => self.not_implemented(ty, p, refs),
            Type::LimitCpu => self.not_implemented(ty, p, refs),
            Type::Error | Type::Stream => Err(RequestError::UnknownRequest(ty.name())),
        }
    }

    fn create_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::CreateRequest = dec(p, "CreateRequest")?;
        let c = self.create(r, refs)?;
        let handle = Some(c.handle.clone());
        ok(Type::Create, proto::CreateResponse { handle })
    }

    fn stop_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::StopRequest = dec(p, "StopRequest")?;
        let c = self.container_for(&r.handle, "StopRequest", refs)?;
        let kill = r.kill.unwrap_or(false);
        if r.background.unwrap_or(false) {
            c.check_state(&[State::Active, State::Stopped])?;
            let srv = self.clone();
            spawn_thread("stop", move || {
                if let Err(e) = srv.stop(&c, kill) {
                    log::warn!("{:?}: background stop: {e}", c.handle);
                }
            });
        } else {
            self.stop(&c, kill)?;
        }
        ok(Type::Stop, proto::StopResponse {})
    }

    fn destroy_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::DestroyRequest = dec(p, "DestroyRequest")?;
        let c = self.container_for(&r.handle, "DestroyRequest", refs)?;
        self.destroy(&c)?;
        ok(Type::Destroy, proto::DestroyResponse {})
    }

    fn info_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::InfoRequest = dec(p, "InfoRequest")?;
        let c = self.container_for(&r.handle, "InfoRequest", refs)?;
        self.check_wshd(&c);
        c.check_state(&[State::Active, State::Stopped])?;
        ok(Type::Info, c.info())
    }

    fn spawn_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::SpawnRequest = dec(p, "SpawnRequest")?;
        let c = self.container_for(&r.handle, "SpawnRequest", refs)?;
        let j = self.spawn_job(&c, &r)?;
        ok(Type::Spawn, proto::SpawnResponse { job_id: Some(j.id) })
    }

    fn link_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::LinkRequest = dec(p, "LinkRequest")?;
        let c = self.container_for(&r.handle, "LinkRequest", refs)?;
        let id = *required(&r.job_id, "LinkRequest", "job_id")?;
        self.link(&c, id)
    }

    fn run_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::RunRequest = dec(p, "RunRequest")?;
        let c = self.container_for(&r.handle, "RunRequest", refs)?;
        let j = self.spawn_job(&c, &r)?;
        let (_, body) = self.link(&c, j.id)?;
        Ok((Type::Run, body))
    }

    fn stream_request(
        &self,
        p: &[u8],
        w: &mut UnixStream,
        refs: &mut Refs,
    ) -> Result<(), RequestError> {
        let r: proto::StreamRequest = dec(p, "StreamRequest")?;
        let c = self.container_for(&r.handle, "StreamRequest", refs)?;
        let id = *required(&r.job_id, "StreamRequest", "job_id")?;
        self.stream(&c, id, w)
    }

    fn net_in_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::NetInRequest = dec(p, "NetInRequest")?;
        let c = self.container_for(&r.handle, "NetInRequest", refs)?;
        self.net_in(&c, &r)
    }

    fn copy_in_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::CopyInRequest = dec(p, "CopyInRequest")?;
        let c = self.container_for(&r.handle, "CopyInRequest", refs)?;
        let s = required(&r.src_path, "CopyInRequest", "src_path")?;
        let d = required(&r.dst_path, "CopyInRequest", "dst_path")?;
        self.copy_in(&c, s, d)?;
        ok(Type::CopyIn, proto::CopyInResponse {})
    }

    fn copy_out_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::CopyOutRequest = dec(p, "CopyOutRequest")?;
        let c = self.container_for(&r.handle, "CopyOutRequest", refs)?;
        let s = required(&r.src_path, "CopyOutRequest", "src_path")?;
        let d = required(&r.dst_path, "CopyOutRequest", "dst_path")?;
        self.copy_out(&c, s, d, r.owner.as_deref())?;
        ok(Type::CopyOut, proto::CopyOutResponse {})
    }

    /// net_out and limit_*: the handle is checked, then refused.
    fn not_implemented(&self, ty: Type, p: &[u8], refs: &mut Refs) -> Reply {
        let what = format!("{}Request", ty.name());
        let r: proto::HandleOnly = dec(p, &what)?;
        self.container_for(&r.handle, &what, refs)?;
        Err(RequestError::NotImplemented(snake(ty.name())))
    }
}

fn echo(p: &[u8]) -> Reply {
    let r: proto::EchoRequest = dec(p, "EchoRequest")?;
    let m = required(&r.message, "EchoRequest", "message")?;
    let message = Some(m.clone());
    ok(Type::Echo, proto::EchoResponse { message })
}

/// `LimitMemory` -> `limit_memory`.
fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(ch.to_ascii_lowercase());
        } else {
            s.push(ch);
        }
    }
    s
}

/// Writes an ErrorResponse carrying `msg`.
pub fn send_error(w: &mut UnixStream, msg: &str) -> std::io::Result<()> {
    proto::write_message(
        w,
        Type::Error,
        &proto::ErrorResponse {
            message: Some(msg.to_string()),
            data: None,
            backtrace: vec![],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_names() {
        assert_eq!(snake("LimitMemory"), "limit_memory");
        assert_eq!(snake("NetOut"), "net_out");
    }

    #[test]
    fn echo_and_decode_errors() {
        let m = proto::EchoRequest {
            message: Some("hi".into()),
        };
        let (t, body) = echo(&m.encode_to_vec()).unwrap();
        assert_eq!(t, Type::Echo);
        let r = proto::EchoResponse::decode(body.as_slice()).unwrap();
        assert_eq!(r.message.as_deref(), Some("hi"));
        let e = echo(&[]).unwrap_err().to_string();
        assert_eq!(e, "EchoRequest.message is required");
        let e = echo(&[0xff]).unwrap_err().to_string();
        assert!(e.starts_with("undecodable EchoRequest: "), "{e}");
    }
}
