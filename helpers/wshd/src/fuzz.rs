//! Properties checked by the fuzz target `wsh_proto` (`fuzz/`) and by the
//! test that replays its saved regressions (`fuzz/regressions/wsh_proto/`),
//! plus the target's seed inputs.
//!
//! One input is used twice: as a packet for both decoders, and as a script
//! that builds a request and a reply for the encoders. Every property
//! failure panics. Allocation bounds are measured with
//! [`wsys::alloc::measure`]: real in binaries whose global allocator is
//! [`wsys::alloc::Measuring`], trivially true elsewhere.

use crate::proto::*;
use wsys::alloc::measure;

use wsys::fuzzkit::Script;

/// Whether `encode_request` must accept `r`: every documented bound, checked
/// independently of the encoder.
fn valid(r: &Request) -> bool {
    let nul = |b: &[u8]| b.contains(&0);
    let mut ids = r.rlimits.iter().map(|&(i, _, _)| i).collect::<Vec<_>>();
    ids.sort_unstable();
    ids.dedup();
    let size = 5
        + 5
        + 1
        + r.user.len()
        + 2
        + r.lang.len()
        + 1
        + r.term.len()
        + 1
        + 9 * r.rlimits.len()
        + 2
        + r.argv.iter().map(|a| 4 + a.len()).sum::<usize>();
    r.user.len() <= MAX_USER
        && !nul(r.user.as_bytes())
        && r.lang.len() <= MAX_LANG
        && !nul(r.lang.as_bytes())
        && r.term.len() <= MAX_TERM
        && !nul(r.term.as_bytes())
        && r.rlimits.len() <= MAX_RLIMITS
        && ids.len() == r.rlimits.len()
        && r.rlimits
            .iter()
            .all(|&(i, _, _)| (i as usize) < RLIMITS.len())
        && r.argv.len() <= MAX_ARGS
        && r.argv.iter().all(|a| !nul(a))
        && size <= MAX_MSG
}

/// The decoders on a packet: a request is accepted only in the encoder's
/// exact form (so it re-encodes byte for byte) and within every bound; a
/// reply re-encodes to itself; an ERROR's message is one line of at most
/// `MAX_ERROR` bytes; what decoding holds stays proportional to the packet.
fn decoders(data: &[u8]) {
    let (req, u) = measure(|| decode_request(data));
    assert!(
        u.peak <= 4 * data.len() + MAX_ARGS * 3 * std::mem::size_of::<Vec<u8>>() + 1024,
        "decoding a {}-byte request held {} bytes",
        data.len(),
        u.peak
    );
    if let Ok(r) = req {
        assert!(valid(&r), "decoded request breaks a bound: {r:?}");
        assert_eq!(
            encode_request(&r).as_deref(),
            Ok(data),
            "non-canonical request accepted"
        );
    }
    let (rep, u) = measure(|| decode_reply(data));
    assert!(u.peak <= 4 * data.len() + 3 * MAX_ERROR + 64);
    if let Ok(r) = rep {
        let again = encode_reply(&r);
        assert_eq!(decode_reply(&again).as_ref(), Ok(&r));
        match &r {
            Reply::Error { message, .. } => {
                assert!(message.len() <= MAX_ERROR && !message.contains(['\n', '\0']));
            }
            _ => assert_eq!(again, data, "non-canonical reply accepted"),
        }
    }
}

/// The encoders on values built from the same bytes: encode accepts exactly
/// the values within bounds, and decode(encode(x)) == x (for an ERROR, x
/// after [`one_line`], which is checked against its own definition).
fn encoders(data: &[u8]) {
    let mut s = Script(data);
    let flags = s.u8();
    let mut r = Request {
        tty: flags & 1 != 0,
        kill_on_disconnect: flags & 2 != 0,
        rows: s.u16(),
        cols: s.u16(),
        user: s.string(MAX_USER + 8),
        lang: s.string(MAX_LANG + 8),
        term: s.string(MAX_TERM + 8),
        ..Default::default()
    };
    for _ in 0..s.u8() % (MAX_RLIMITS as u8 + 3) {
        let (soft, hard) = (s.u64(), s.u64());
        r.rlimits.push((s.u8() % 17, soft.min(hard), hard));
    }
    let argc = usize::from(s.u16()) % (MAX_ARGS + 8);
    for _ in 0..argc {
        let n = usize::from(s.u16());
        r.argv.push(s.bytes(n));
    }
    match encode_request(&r) {
        Ok(b) => {
            assert!(valid(&r), "encoder accepted {r:?}");
            assert!(b.len() <= MAX_MSG);
            assert_eq!(decode_request(&b), Ok(r));
        }
        Err(e) => assert!(!valid(&r), "encoder refused a valid request: {e}"),
    }
    let status = s.u8();
    let message = s.string(MAX_ERROR + 64);
    let mut want = message.replace(['\n', '\0'], " ");
    while want.len() > MAX_ERROR {
        want.pop();
    }
    assert_eq!(one_line(&message), want);
    let e = Reply::Error { status, message };
    assert_eq!(
        decode_reply(&encode_reply(&e)),
        Ok(Reply::Error {
            status,
            message: want
        })
    );
    for r in [
        Reply::Ready { pid: status.into() },
        Reply::Exit {
            signaled: flags & 4 != 0,
            code: status,
        },
    ] {
        assert_eq!(decode_reply(&encode_reply(&r)), Ok(r));
    }
}

/// Runs every property on one input.
pub fn check_proto(data: &[u8]) {
    decoders(data);
    encoders(data);
}

/// Valid requests and replies: the `wsh_proto` target's seeds.
pub fn seeds() -> Vec<Vec<u8>> {
    let full = Request {
        tty: true,
        kill_on_disconnect: true,
        rows: 24,
        cols: 80,
        user: "vcap".into(),
        lang: "en_US.UTF-8".into(),
        term: "xterm-256color".into(),
        rlimits: vec![
            (9, 4096, 8192),
            (1, RLIM_UNLIMITED, RLIM_UNLIMITED),
            (14, 8 << 20, 8 << 20),
        ],
        argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()],
    };
    let plain = Request {
        argv: vec![b"true".to_vec()],
        ..Default::default()
    };
    let mut v: Vec<Vec<u8>> = [full, plain, Request::default()]
        .iter()
        .map(|r| encode_request(r).unwrap())
        .collect();
    for r in [
        Reply::Ready { pid: 42 },
        Reply::Exit {
            signaled: false,
            code: 3,
        },
        Reply::Exit {
            signaled: true,
            code: 9,
        },
        Reply::Error {
            status: 127,
            message: "unknown user 'bob'".into(),
        },
    ] {
        v.push(encode_reply(&r));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass_their_checks() {
        for s in seeds() {
            check_proto(&s);
        }
    }
}
