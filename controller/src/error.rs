//! Why a request failed: the one catalogue of the messages clients see.
//!
//! A [`RequestError`]'s `Display` is the text sent to the client as
//! `ErrorResponse.message`. Where warden had a message for the case, the
//! text is warden's, byte for byte (clients and warden's shared examples
//! match on it): "unknown handle", "no such job", "Container state must be
//! one of ...", "container with handle: H already exists.", "Could not
//! acquire network", "Could not acquire UID", "no port available",
//! "iomux-spawn failed", "rootfs R not found", "Source path for bind mount
//! does not exist: P", "Unknown request: XRequest". The rest are this
//! server's own, and name what was wrong (the handle, job id, port, path).

use crate::container::State;
use crate::proto::PayloadError;
use crate::sh::StepError;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    // ------------------------------------------------------------ warden's
    #[error("unknown handle")]
    UnknownHandle,
    #[error("no such job")]
    NoSuchJob,
    #[error("Container state must be one of '{}', current state is '{}'", states(.allowed), .current.as_str())]
    State { allowed: Vec<State>, current: State },
    #[error("container with handle: {0} already exists.")]
    HandleTaken(String),
    #[error("Could not acquire network: {0}")]
    NetworkTaken(String),
    #[error("Could not acquire network")]
    NoNetwork,
    #[error("Could not acquire UID")]
    NoUid,
    #[error("no port available")]
    NoPort,
    #[error("iomux-spawn failed")]
    SpawnFailed,
    #[error("rootfs {0} not found")]
    NoRootfs(String),
    #[error("Source path for bind mount does not exist: {0}")]
    NoBindSource(String),
    #[error("Unknown request: {0}Request")]
    UnknownRequest(&'static str),

    // ---------------------------------------------------- this server's own
    #[error("Unknown request type: {0}")]
    UnknownType(i32),
    #[error("undecodable {what}: {err}")]
    Undecodable { what: String, err: PayloadError },
    #[error("{msg}.{field} is required")]
    Required { msg: String, field: &'static str },
    #[error("invalid handle: {0:?}")]
    InvalidHandle(String),
    #[error("BindMount.mode is required")]
    BindModeRequired,
    #[error("bind_mounts[{0}]: unknown mode {1}")]
    BindMode(usize, i32),
    #[error("invalid bind mount destination: {0}")]
    BindDestination(String),
    #[error("invalid port: {0}:{1}")]
    Port(u32, u32),
    #[error("rlimit {name}={value} exceeds the server's hard limit {hard}")]
    Rlimit { name: String, value: u64, hard: u64 },
    #[error("the container's root filesystem has no /bin/bash: run and spawn need a shell (wsh can run other programs directly)")]
    NoBash,
    #[error(
        "{0} is not implemented by this server yet (net_out and limit_* come in a later release)"
    )]
    NotImplemented(String),
    #[error("container {0}: is being destroyed")]
    Destroying(String),
    /// The host side of a request failed (`what` names the step or path).
    #[error("{what}: {err}")]
    Host { what: String, err: std::io::Error },
    #[error("{0}")]
    Step(#[from] StepError),
    #[error("copy_in failed: {0}")]
    CopyIn(String),
    #[error("copy_out failed: {0}")]
    CopyOut(String),
    /// A link/run/stream broken by drain: the connection closes with no
    /// response (warden's clients see EOF). Never sent to a client.
    #[error("the server is draining")]
    Draining,
}

fn states(s: &[State]) -> String {
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

impl RequestError {
    /// `what: err` for an I/O failure on the host side.
    pub fn host(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RequestError {
        let what = what.into();
        move |err| RequestError::Host { what, err }
    }
}

/// `msg.field`, or [`RequestError::Required`] naming it.
pub fn required<'a, T>(
    v: &'a Option<T>,
    msg: &str,
    field: &'static str,
) -> Result<&'a T, RequestError> {
    v.as_ref().ok_or_else(|| RequestError::Required {
        msg: msg.into(),
        field,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warden_texts() {
        let e = RequestError::State {
            allowed: vec![State::Active, State::Stopped],
            current: State::Destroyed,
        };
        assert_eq!(
            e.to_string(),
            "Container state must be one of 'active, stopped', current state is 'destroyed'"
        );
        let e = RequestError::State {
            allowed: vec![State::Active],
            current: State::Stopped,
        };
        assert_eq!(
            e.to_string(),
            "Container state must be one of 'active', current state is 'stopped'"
        );
        assert_eq!(RequestError::UnknownHandle.to_string(), "unknown handle");
        assert_eq!(RequestError::NoSuchJob.to_string(), "no such job");
        assert_eq!(
            RequestError::HandleTaken("h".into()).to_string(),
            "container with handle: h already exists."
        );
        assert_eq!(
            RequestError::UnknownRequest("Error").to_string(),
            "Unknown request: ErrorRequest"
        );
    }

    #[test]
    fn required_names_the_field() {
        let v: Option<u32> = None;
        let e = required(&v, "LinkRequest", "job_id").unwrap_err();
        assert_eq!(e.to_string(), "LinkRequest.job_id is required");
        assert_eq!(*required(&Some(3), "X", "y").unwrap(), 3);
    }
}
