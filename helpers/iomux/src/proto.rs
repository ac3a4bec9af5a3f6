//! The iomux-link <-> iomux-spawn protocol (ours; the C one is not kept).
//!
//! iomux-spawn listens on three unix stream sockets in its directory:
//! `stdout.sock`, `stderr.sock`, `status.sock`. A linker connects to all
//! three. Every message has a fixed size; integers are little-endian; there
//! is no variable-length field, so no length needs bounding beyond these.
//!
//! Offsets: each stream (stdout, stderr) is addressed by a u64 byte offset
//! counted from the job's first byte on that stream. A linker's cursor is the
//! offset of the next byte it wants.
//!
//! 1. Linker -> spawner, on each socket, first and only message
//!    (HELLO, 16 bytes):
//!    `b"IOMXLNK1"` then u64 `offset` (the cursor for stdout/stderr; 0 and
//!    ignored on status.sock).
//!
//! 2. Spawner -> linker on stdout.sock / stderr.sock (HEADER, 16 bytes,
//!    in one `sendmsg` carrying exactly one fd by SCM_RIGHTS):
//!    `b"IOMXSRV1"` then u64 `first`, the offset of the first byte that
//!    follows; the fd is the read end of a pipe (the DATA pipe) made for
//!    this connection. `first >= offset`; `first - offset` bytes were
//!    dropped by ring overflow before this link and are lost. An `offset`
//!    beyond the stream's current end is refused: the spawner closes the
//!    connection without a header (so does it when it has too many
//!    connections). The stream's raw bytes from `first` on then flow through
//!    the DATA pipe, unframed (the spawner `tee`s them from the job's pipe
//!    when the linker is caught up, else writes them from the ring; the
//!    linker can `splice` them to its output: no copy through user memory).
//!    When the job has exited and the stream's final byte is in the pipe,
//!    the spawner closes its end (EOF); it closes the socket once the
//!    linker has ACKed the final offset (or closed its side).
//!
//! 3. Spawner -> linker on status.sock once the job has exited and both
//!    streams' final offsets are known (STATUS, 32 bytes):
//!    `b"IOMXSTS1"`, u8 `kind` (1 = exited, 2 = killed by a signal), u8
//!    `code` (exit code, or signal number), u8 `core` (1 if a core was
//!    dumped; 0 when exited), 5 zero bytes, u64 `stdout_end`, u64 `stderr_end` (total bytes
//!    the job wrote to each stream). Then the spawner closes.
//!    A linker has everything once both DATA pipes hit EOF with its cursors
//!    at `stdout_end` / `stderr_end`; an EOF anywhere else means iomux-spawn
//!    went away (killed) and the output is incomplete.
//!
//! 4. Linker -> spawner on stdout.sock / stderr.sock after HELLO: ACKs,
//!    8 bytes each, u64 `written`: the offset up to which the linker has
//!    written the stream to its own output. ACKs never decrease and never
//!    exceed what was put in the DATA pipe (initially the ack is `first`);
//!    anything else is a protocol error ([`AckReader`] checks this). On
//!    status.sock the linker sends nothing after HELLO.
//!    On a protocol error the spawner drops that connection. A linker that
//!    closes its connection is detached; the spawner forgets it (the linker
//!    keeps its cursors itself, see `files`).
//!
//! Flow control: while a linker is attached to a stream, the spawner keeps
//! every byte from that linker's last ACK on: when the ring would have to
//! overwrite one, it stops reading the job's pipe (back-pressure, as the C
//! iomux did). So when a linker stops (SIGTERM), every byte it had not yet
//! written out is still in the ring; such bytes are lost only when, after it
//! detached, more output arrives than the ring has room for (then the next
//! link is told how many). With no linker attached the spawner keeps reading
//! and overwrites the oldest bytes, so the job never blocks on its output.

/// Magic of the linker's HELLO.
pub const HELLO_MAGIC: [u8; 8] = *b"IOMXLNK1";
/// Magic of the spawner's stream HEADER.
pub const HEADER_MAGIC: [u8; 8] = *b"IOMXSRV1";
/// Magic of the spawner's STATUS.
pub const STATUS_MAGIC: [u8; 8] = *b"IOMXSTS1";
/// Size of HELLO.
pub const HELLO_LEN: usize = 16;
/// Size of HEADER.
pub const HEADER_LEN: usize = 16;
/// Size of STATUS.
pub const STATUS_LEN: usize = 32;
/// Size of an ACK.
pub const ACK_LEN: usize = 8;

/// Socket names inside the job directory.
pub const STDOUT_SOCK: &str = "stdout.sock";
/// See [`STDOUT_SOCK`].
pub const STDERR_SOCK: &str = "stderr.sock";
/// See [`STDOUT_SOCK`].
pub const STATUS_SOCK: &str = "status.sock";

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Exited(u8),
    /// Killed by signal `sig`; `core` if it dumped core.
    Signaled { sig: u8, core: bool },
}

impl Exit {
    /// The shell convention: the exit code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Exit::Exited(c) => i32::from(c),
            Exit::Signaled { sig, .. } => 128 + i32::from(sig),
        }
    }
}

/// Protocol decoding errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("bad magic {0:?}")]
    Magic([u8; 8]),
    #[error("bad status kind {0}")]
    Kind(u8),
    #[error("bad STATUS byte {at}: {value}")]
    StatusByte { at: usize, value: u8 },
    #[error("ACK {ack} outside [{acked}, {sent}]")]
    Ack { ack: u64, acked: u64, sent: u64 },
}

/// Encodes HELLO.
pub fn hello(offset: u64) -> [u8; HELLO_LEN] {
    let mut b = [0u8; HELLO_LEN];
    b[..8].copy_from_slice(&HELLO_MAGIC);
    b[8..].copy_from_slice(&offset.to_le_bytes());
    b
}

/// Decodes HELLO into its offset.
pub fn parse_hello(b: &[u8; HELLO_LEN]) -> Result<u64, ProtoError> {
    magic(b, HELLO_MAGIC)?;
    Ok(u64_at(b, 8))
}

/// Encodes HEADER.
pub fn header(first: u64) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(&HEADER_MAGIC);
    b[8..].copy_from_slice(&first.to_le_bytes());
    b
}

/// Decodes HEADER into `first`.
pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<u64, ProtoError> {
    magic(b, HEADER_MAGIC)?;
    Ok(u64_at(b, 8))
}

/// The STATUS message's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub exit: Exit,
    pub stdout_end: u64,
    pub stderr_end: u64,
}

/// Encodes STATUS.
pub fn status(s: &Status) -> [u8; STATUS_LEN] {
    let mut b = [0u8; STATUS_LEN];
    b[..8].copy_from_slice(&STATUS_MAGIC);
    match s.exit {
        Exit::Exited(c) => {
            b[8] = 1;
            b[9] = c;
        }
        Exit::Signaled { sig, core } => {
            b[8] = 2;
            b[9] = sig;
            b[10] = u8::from(core);
        }
    }
    b[16..24].copy_from_slice(&s.stdout_end.to_le_bytes());
    b[24..32].copy_from_slice(&s.stderr_end.to_le_bytes());
    b
}

/// Decodes STATUS. Only what [`status`] writes is accepted: `core` is 0 or
/// 1 (and 0 for an exit), the padding is zero.
pub fn parse_status(b: &[u8; STATUS_LEN]) -> Result<Status, ProtoError> {
    magic(b, STATUS_MAGIC)?;
    let max_core = match b[8] {
        1 => 0,
        2 => 1,
        k => return Err(ProtoError::Kind(k)),
    };
    if b[10] > max_core {
        return Err(ProtoError::StatusByte {
            at: 10,
            value: b[10],
        });
    }
    if let Some(at) = (11..16).find(|&i| b[i] != 0) {
        return Err(ProtoError::StatusByte { at, value: b[at] });
    }
    let exit = match b[8] {
        1 => Exit::Exited(b[9]),
        _ => Exit::Signaled {
            sig: b[9],
            core: b[10] == 1,
        },
    };
    Ok(Status {
        exit,
        stdout_end: u64_at(b, 16),
        stderr_end: u64_at(b, 24),
    })
}

/// Encodes an ACK.
pub fn ack(written: u64) -> [u8; ACK_LEN] {
    written.to_le_bytes()
}

/// Spawner side: the ACKs of one stream connection, which arrive in pieces
/// of any size. Enforces rule 4: an ACK never decreases and never exceeds
/// what was put in the DATA pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckReader {
    part: [u8; ACK_LEN],
    len: usize,
    acked: u64,
}

impl AckReader {
    /// Before any ACK: everything before `first` (the HEADER's) counts as
    /// written.
    pub fn new(first: u64) -> Self {
        AckReader {
            part: [0; ACK_LEN],
            len: 0,
            acked: first,
        }
    }

    /// The last ACK: the linker has written everything before it.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Takes the next bytes read from the socket; `sent` is the offset up
    /// to which bytes went into the DATA pipe. An error is a protocol error
    /// (the connection is dropped; the reader is then of no further use).
    pub fn feed(&mut self, bytes: &[u8], sent: u64) -> Result<(), ProtoError> {
        for &byte in bytes {
            self.part[self.len] = byte;
            self.len += 1;
            if self.len == ACK_LEN {
                self.len = 0;
                let ack = u64::from_le_bytes(self.part);
                if ack < self.acked || ack > sent {
                    return Err(ProtoError::Ack {
                        ack,
                        acked: self.acked,
                        sent,
                    });
                }
                self.acked = ack;
            }
        }
        Ok(())
    }
}

fn magic(b: &[u8], want: [u8; 8]) -> Result<(), ProtoError> {
    let mut m = [0u8; 8];
    m.copy_from_slice(&b[..8]);
    if m != want {
        return Err(ProtoError::Magic(m));
    }
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_hello(&hello(u64::MAX - 3)).unwrap(), u64::MAX - 3);
        assert_eq!(parse_header(&header(77)).unwrap(), 77);
        for exit in [
            Exit::Exited(0),
            Exit::Exited(255),
            Exit::Signaled {
                sig: 9,
                core: false,
            },
            Exit::Signaled {
                sig: 11,
                core: true,
            },
        ] {
            let s = Status {
                exit,
                stdout_end: 1 << 40,
                stderr_end: 3,
            };
            assert_eq!(parse_status(&status(&s)).unwrap(), s);
        }
    }

    #[test]
    fn rejects_garbage() {
        let mut h = hello(1);
        h[0] = b'x';
        assert!(matches!(parse_hello(&h), Err(ProtoError::Magic(_))));
        assert!(parse_header(&hello(1)).is_err());
        let mut s = status(&Status {
            exit: Exit::Exited(1),
            stdout_end: 0,
            stderr_end: 0,
        });
        s[8] = 9;
        assert_eq!(parse_status(&s), Err(ProtoError::Kind(9)));
        s[8] = 1;
        s[10] = 1;
        assert_eq!(
            parse_status(&s),
            Err(ProtoError::StatusByte { at: 10, value: 1 })
        );
        s[8] = 2;
        assert!(parse_status(&s).is_ok());
        s[15] = 7;
        assert_eq!(
            parse_status(&s),
            Err(ProtoError::StatusByte { at: 15, value: 7 })
        );
    }

    #[test]
    fn acks_in_pieces() {
        let mut r = AckReader::new(10);
        let a = ack(15);
        r.feed(&a[..3], 20).unwrap();
        assert_eq!(r.acked(), 10);
        r.feed(&a[3..], 20).unwrap();
        assert_eq!(r.acked(), 15);
        assert!(r.feed(&ack(14), 20).is_err(), "decreasing");
        let mut r = AckReader::new(10);
        assert!(r.feed(&ack(21), 20).is_err(), "beyond what was sent");
    }

    #[test]
    fn codes() {
        assert_eq!(Exit::Exited(3).code(), 3);
        assert_eq!(
            Exit::Signaled {
                sig: 9,
                core: false
            }
            .code(),
            137
        );
    }
}
