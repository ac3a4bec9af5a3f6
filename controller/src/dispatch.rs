//! Serving one connection: requests are read (crate::conn), routed by
//! type to their handler, and answered in order. A handler's
//! [`RequestError`] becomes an ErrorResponse carrying its text.
//!
//! Routing is the table in [`Server::route`]: one line per request type,
//! calling the handler in the module that owns it (lifecycle, jobs, copy,
//! net).
//!
//! Order (issue 16): each request gets a sequence number once its frame
//! has been read completely ([`Server::sequence`]), and a request naming a
//! container joins that container's [`Order`]. It takes effect only when
//! every request on the container with a smaller number has *started*:
//! a spawn/run once its job exists, a link/stream once it found its job, a
//! copy once its stream began, anything else once it is done. So a
//! destroy written after a run (on any connection) waits for the run's job
//! and then ends it (the run returns the job's status and info, as
//! warden's did), and a request written after a destroy finds no container
//! ("unknown handle"). Requests on different containers never wait for
//! each other. A turn that does not come within [`TURN_WAIT`] (an earlier
//! request stuck) is taken anyway.
//!
//! Sequencing happens when the server *reads* a frame, which on a busy
//! host can be after a frame another client wrote later was read. So a
//! destroy or stop first lets the other connections finish reading what
//! is already on their wire ([`Server::settle`]: bytes in the socket, or a
//! frame begun; at most [`SETTLE_WAIT`]) and then takes a new, later
//! number: a run written before it is then ahead of it.
//!
//! Test hooks, in the server's environment: `WARDEN_TEST_TURN_DELAY_MS=N`
//! delays every request on a container except stop and destroy by N ms
//! after it is sequenced, before it waits for its turn;
//! `WARDEN_TEST_READ_DELAY_MS=N` pauses every connection's reader N ms
//! once a frame's first bytes have left the socket, before the frame is
//! read whole (the tests use them to lose the races that ordering must
//! win).

use crate::container::{Container, State};
use crate::error::{required, RequestError};
use crate::proto::{self, FrameError, Type};
use crate::server::{lock, spawn_thread, Server};
use prost::Message as _;
use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// Longest a request waits for the earlier ones on its container to start.
pub const TURN_WAIT: Duration = Duration::from_secs(10);

/// Longest a destroy or stop waits for other connections' frames on the wire.
pub const SETTLE_WAIT: Duration = Duration::from_millis(200);

/// One connection, as destroy and stop see it ([`Server::settle`]).
pub struct Wire {
    sock: UnixStream,
    /// A frame has begun to arrive and is not sequenced yet.
    receiving: Arc<AtomicBool>,
}

impl Wire {
    /// Whether bytes of a request are on their way in.
    fn pending(&self) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        if self.receiving.load(Ordering::SeqCst) {
            return true;
        }
        let mut b = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        recv(self.sock.as_raw_fd(), &mut b, flags).is_ok_and(|n| n > 0)
    }
}

/// The sequence numbers of a container's requests not yet started.
#[derive(Debug, Default)]
pub struct Order {
    pending: Mutex<BTreeSet<u64>>,
    cv: Condvar,
}

/// A request's place in its container's [`Order`]; [`Turn::started`] (or
/// dropping it) lets the next request go.
#[derive(Default)]
pub struct Turn(Option<(Arc<Container>, u64)>);

impl Turn {
    fn join(c: Arc<Container>, seq: u64) -> Turn {
        lock(&c.order.pending).insert(seq);
        Turn(Some((c, seq)))
    }

    /// Waits (at most `limit`) until every earlier request on the
    /// container has started; false when the wait timed out.
    fn wait(&self, limit: Duration) -> bool {
        let Some((c, seq)) = &self.0 else { return true };
        let end = Instant::now() + limit;
        let mut p = lock(&c.order.pending);
        while p.first().is_some_and(|first| first < seq) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            p = c
                .order
                .cv
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// This request has taken effect far enough for later ones to go.
    pub fn started(&mut self) {
        if let Some((c, seq)) = self.0.take() {
            lock(&c.order.pending).remove(&seq);
            c.order.cv.notify_all();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.started();
    }
}

/// The type of a request envelope.
fn kind(m: &proto::Message) -> Option<Type> {
    m.r#type.and_then(|t| Type::try_from(t).ok())
}

/// Request types that name an existing container (`handle`, field 1).
fn names_a_container(t: Type) -> bool {
    !matches!(
        t,
        Type::Ping | Type::List | Type::Echo | Type::Create | Type::Error
    )
}

/// The test hook's delay (see the module documentation).
fn test_delay() -> Option<Duration> {
    static D: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *D.get_or_init(|| env_ms("WARDEN_TEST_TURN_DELAY_MS"))
}

fn test_read_delay() -> Option<Duration> {
    static D: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *D.get_or_init(|| env_ms("WARDEN_TEST_READ_DELAY_MS"))
}

fn env_ms(name: &str) -> Option<Duration> {
    let ms: u64 = std::env::var(name).ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

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
        let Ok(sock) = stream.try_clone() else { return };
        let wire = Arc::new(Wire {
            sock,
            receiving: Arc::new(AtomicBool::new(false)),
        });
        {
            let mut ws = lock(&self.wires);
            ws.retain(|w| w.strong_count() > 0);
            ws.push(Arc::downgrade(&wire));
        }
        let mut rd = crate::conn::RequestReader::new(rd, self.limits());
        rd.watch(wire.receiving.clone());
        rd.delay_after_first_bytes(test_read_delay());
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
            let mut turn = self.sequence(&m);
            // Still set when the client already wrote (part of) its next frame.
            wire.receiving.store(rd.buffered(), Ordering::SeqCst);
            if turn.0.is_some() && matches!(kind(&m), Some(Type::Destroy | Type::Stop)) {
                self.settle(&wire);
                self.resequence(&mut turn);
            }
            *lock(&self.busy) += 1;
            // Requests by type, latency (warden_request_duration_seconds).
            let r = crate::metrics::timed(m.r#type, || self.handle(m, turn, &mut w, &mut refs));
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

    /// Waits (at most [`SETTLE_WAIT`]) until no connection but `me` has a
    /// request on its way in.
    fn settle(&self, me: &Arc<Wire>) {
        let end = Instant::now() + SETTLE_WAIT;
        loop {
            let others: Vec<Arc<Wire>> = lock(&self.wires)
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|w| !Arc::ptr_eq(w, me))
                .collect();
            if !others.iter().any(|w| w.pending()) || Instant::now() >= end {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Gives a request a new, later number in its container's order.
    fn resequence(&self, turn: &mut Turn) {
        let Some((c, old)) = turn.0.take() else {
            return;
        };
        let mut n = lock(&self.sequence);
        *n += 1;
        {
            let mut p = lock(&c.order.pending);
            p.remove(&old);
            p.insert(*n);
        }
        c.order.cv.notify_all();
        log::debug!("{:?}: request {old} is now {}", c.handle, *n);
        turn.0 = Some((c, *n));
    }

    /// Numbers a request whose frame is complete and, when it names a
    /// container, puts it in that container's order.
    fn sequence(&self, m: &proto::Message) -> Turn {
        let Some(t) = m.r#type.and_then(|t| Type::try_from(t).ok()) else {
            return Turn::default();
        };
        let p = m.payload.as_deref().unwrap_or_default();
        let handle = names_a_container(t)
            .then(|| proto::HandleOnly::decode(p).ok()?.handle)
            .flatten();
        let mut n = lock(&self.sequence);
        *n += 1;
        let Some(c) = handle.and_then(|h| self.lookup(&h).ok()) else {
            return Turn::default();
        };
        log::debug!("{:?}: request {}: {}", c.handle, *n, t.name());
        Turn::join(c, *n)
    }

    /// Answers one request; an error when the connection must close.
    fn handle(
        self: &Arc<Self>,
        m: proto::Message,
        mut turn: Turn,
        w: &mut UnixStream,
        refs: &mut Refs,
    ) -> std::io::Result<()> {
        let raw = m.r#type.unwrap_or(0);
        let payload = m.payload.unwrap_or_default();
        let ty = Type::try_from(raw);
        if let (Some(d), Ok(t)) = (test_delay(), ty) {
            if turn.0.is_some() && t != Type::Stop && t != Type::Destroy {
                std::thread::sleep(d);
            }
        }
        if !turn.wait(TURN_WAIT) {
            log::warn!("request {raw}: earlier requests on its container did not start within {TURN_WAIT:?}; going ahead");
        }
        let reply = match ty {
            Err(_) => Err(RequestError::UnknownType(raw)),
            // Stream answers with many frames, written as they come.
            Ok(Type::Stream) => match self.stream_request(&payload, w, refs, &mut turn) {
                Ok(()) => return Ok(()),
                Err(e) => Err(e),
            },
            Ok(ty) => self.route(ty, &payload, refs, &mut turn),
        };
        drop(turn);
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
    fn route(self: &Arc<Self>, ty: Type, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
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
            Type::Spawn => self.spawn_request(p, refs, turn),
            Type::Link => self.link_request(p, refs, turn),
            Type::Run => self.run_request(p, refs, turn),
            Type::NetIn => self.net_in_request(p, refs),
            Type::CopyIn => self.copy_in_request(p, refs, turn),
            Type::CopyOut => self.copy_out_request(p, refs, turn),
            Type::NetOut => self.net_out_request(p, refs),
            Type::LimitMemory | Type::LimitDisk | Type::LimitCpu => self.limit_request(ty, p, refs),
            Type::LimitBandwidth => self.limit_bandwidth_request(p, refs),
            Type::Error | Type::Stream => Err(RequestError::UnknownRequest(ty.name())),
        }
    }

    fn create_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::CreateRequest = dec(p, "CreateRequest")?;
        let c = self.create(r, refs)?;
        // A default memory limit (server.container_memory_limit) is watched.
        crate::oom_watch::arm_if_limited(self, &c);
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

    fn spawn_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
        let r: proto::SpawnRequest = dec(p, "SpawnRequest")?;
        let c = self.container_for(&r.handle, "SpawnRequest", refs)?;
        let j = self.spawn_job(&c, &r, turn)?;
        ok(Type::Spawn, proto::SpawnResponse { job_id: Some(j.id) })
    }

    fn link_request(&self, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
        let r: proto::LinkRequest = dec(p, "LinkRequest")?;
        let c = self.container_for(&r.handle, "LinkRequest", refs)?;
        let id = *required(&r.job_id, "LinkRequest", "job_id")?;
        self.link(&c, id, turn)
    }

    fn run_request(self: &Arc<Self>, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
        let r: proto::RunRequest = dec(p, "RunRequest")?;
        let c = self.container_for(&r.handle, "RunRequest", refs)?;
        let j = self.spawn_job(&c, &r, turn)?;
        let (_, body) = self.link(&c, j.id, turn)?;
        Ok((Type::Run, body))
    }

    fn stream_request(
        &self,
        p: &[u8],
        w: &mut UnixStream,
        refs: &mut Refs,
        turn: &mut Turn,
    ) -> Result<(), RequestError> {
        let r: proto::StreamRequest = dec(p, "StreamRequest")?;
        let c = self.container_for(&r.handle, "StreamRequest", refs)?;
        let id = *required(&r.job_id, "StreamRequest", "job_id")?;
        self.stream(&c, id, w, turn)
    }

    fn net_in_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::NetInRequest = dec(p, "NetInRequest")?;
        let c = self.container_for(&r.handle, "NetInRequest", refs)?;
        self.net_in(&c, &r)
    }

    fn net_out_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::NetOutRequest = dec(p, "NetOutRequest")?;
        let c = self.container_for(&r.handle, "NetOutRequest", refs)?;
        ok(Type::NetOut, crate::netout::request(&self.layout, &c, &r)?)
    }

    fn limit_bandwidth_request(&self, p: &[u8], refs: &mut Refs) -> Reply {
        let r: proto::LimitBandwidthRequest = dec(p, "LimitBandwidthRequest")?;
        let c = self.container_for(&r.handle, "LimitBandwidthRequest", refs)?;
        ok(Type::LimitBandwidth, crate::bandwidth::request(&c, &r)?)
    }

    fn copy_in_request(&self, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
        let r: proto::CopyInRequest = dec(p, "CopyInRequest")?;
        let c = self.container_for(&r.handle, "CopyInRequest", refs)?;
        let s = required(&r.src_path, "CopyInRequest", "src_path")?;
        let d = required(&r.dst_path, "CopyInRequest", "dst_path")?;
        self.copy_in(&c, s, d, turn)?;
        ok(Type::CopyIn, proto::CopyInResponse {})
    }

    fn copy_out_request(&self, p: &[u8], refs: &mut Refs, turn: &mut Turn) -> Reply {
        let r: proto::CopyOutRequest = dec(p, "CopyOutRequest")?;
        let c = self.container_for(&r.handle, "CopyOutRequest", refs)?;
        let s = required(&r.src_path, "CopyOutRequest", "src_path")?;
        let d = required(&r.dst_path, "CopyOutRequest", "dst_path")?;
        self.copy_out(&c, s, d, r.owner.as_deref(), turn)?;
        ok(Type::CopyOut, proto::CopyOutResponse {})
    }

    /// limit_memory, limit_cpu, limit_disk (crate::limits).
    fn limit_request(self: &Arc<Self>, ty: Type, p: &[u8], refs: &mut Refs) -> Reply {
        let what = format!("{}Request", ty.name());
        let r: proto::HandleOnly = dec(p, &what)?;
        let c = self.container_for(&r.handle, &what, refs)?;
        crate::limits::request(self, &c, ty, p)
    }
}

fn echo(p: &[u8]) -> Reply {
    let r: proto::EchoRequest = dec(p, "EchoRequest")?;
    let m = required(&r.message, "EchoRequest", "message")?;
    let message = Some(m.clone());
    ok(Type::Echo, proto::EchoResponse { message })
}

/// Writes an ErrorResponse carrying `msg`.
pub fn send_error(w: &mut UnixStream, msg: &str) -> std::io::Result<()> {
    crate::metrics::error_sent();
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

    fn container() -> Arc<Container> {
        Arc::new(Container::new(
            "id".into(),
            "h".into(),
            "/nonexistent".into(),
            0x0afe0000,
            Default::default(),
            None,
        ))
    }

    #[test]
    fn turns_go_in_sequence_order() {
        let c = container();
        let mut first = Turn::join(c.clone(), 1);
        let second = Turn::join(c.clone(), 2);
        let third = Turn::join(c.clone(), 5);
        // Another container's requests do not wait.
        assert!(Turn::join(container(), 3).wait(Duration::ZERO));
        assert!(first.wait(Duration::ZERO));
        assert!(!second.wait(Duration::from_millis(20)));
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let ok = second.wait(Duration::from_secs(10));
            tx.send(ok).unwrap();
            drop(second); // done: the third may go
        });
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        first.started();
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        h.join().unwrap();
        assert!(third.wait(Duration::from_secs(10)));
        drop(third);
        assert!(lock(&c.order.pending).is_empty());
        // No container: never waits.
        assert!(Turn::default().wait(Duration::ZERO));
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
