//! Client side of the warden protocol (used by the ops CLI and the tests).
//!
//! One request at a time on one connection; an ErrorResponse becomes
//! [`ClientError::Server`] carrying warden's message text.

use crate::proto::{self, FrameError, Type};
use prost::Message as _;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {err}")]
    Connect { path: String, err: std::io::Error },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Server(String),
    #[error("unexpected response type {0}")]
    Unexpected(i32),
}

pub struct Client {
    rd: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let w = UnixStream::connect(path).map_err(|err| ClientError::Connect {
            path: path.display().to_string(),
            err,
        })?;
        let rd = BufReader::new(w.try_clone()?);
        Ok(Client { rd, w })
    }

    /// Bounds every read and write on this connection (None: no bound).
    pub fn set_timeout(&self, t: Option<std::time::Duration>) -> Result<(), ClientError> {
        self.w.set_read_timeout(t)?;
        self.w.set_write_timeout(t)?;
        Ok(())
    }

    /// Sends a request frame.
    pub fn send<M: prost::Message>(&mut self, ty: Type, req: &M) -> Result<(), ClientError> {
        proto::write_message(&mut self.w, ty, req)?;
        Ok(())
    }

    /// Reads one response of type `ty`.
    pub fn recv<R: prost::Message + Default>(&mut self, ty: Type) -> Result<R, ClientError> {
        let m = proto::read_message(&mut self.rd)?;
        let payload = m.payload.unwrap_or_default();
        match m.r#type {
            Some(t) if t == Type::Error as i32 => {
                let e =
                    proto::ErrorResponse::decode(payload.as_slice()).map_err(FrameError::from)?;
                Err(ClientError::Server(e.message.unwrap_or_default()))
            }
            Some(t) if t == ty as i32 => {
                Ok(R::decode(payload.as_slice()).map_err(FrameError::from)?)
            }
            t => Err(ClientError::Unexpected(t.unwrap_or(0))),
        }
    }

    /// One request, one response.
    pub fn call<M: prost::Message, R: prost::Message + Default>(
        &mut self,
        ty: Type,
        req: &M,
    ) -> Result<R, ClientError> {
        self.send(ty, req)?;
        self.recv(ty)
    }

    /// Stream: calls `f` for each chunk, returns the final response (the
    /// one carrying exit_status).
    pub fn stream(
        &mut self,
        req: &proto::StreamRequest,
        mut f: impl FnMut(&proto::StreamResponse),
    ) -> Result<proto::StreamResponse, ClientError> {
        self.send(Type::Stream, req)?;
        loop {
            let r: proto::StreamResponse = self.recv(Type::Stream)?;
            if r.exit_status.is_some() {
                return Ok(r);
            }
            f(&r);
        }
    }

    /// The raw stream for tests that send malformed frames.
    pub fn raw(&mut self) -> (&mut BufReader<UnixStream>, &mut UnixStream) {
        (&mut self.rd, &mut self.w)
    }
}
