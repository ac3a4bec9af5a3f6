//! Properties checked by the fuzz target `iomux_proto` (`fuzz/`) and by the
//! test that replays its saved regressions (`fuzz/regressions/iomux_proto/`),
//! plus the target's seed inputs.
//!
//! One input is used three ways: as raw protocol messages and file texts
//! (decoders), as a script of ACK pieces fed to [`AckReader`] against a model,
//! and as a script of writes and reads on a [`Ring`] against a model. Every
//! property failure panics.

use crate::files::{cursors_text, exit_status_text, parse_cursors, parse_exit_status, Cursors};
use crate::proto::{self, AckReader, Exit, Status};
use crate::ring::Ring;
use std::collections::VecDeque;

use wsys::fuzzkit::Script;

fn exit_of(kind: u8, code: u8, core: bool) -> Exit {
    if kind & 1 == 0 {
        Exit::Exited(code)
    } else {
        Exit::Signaled { sig: code, core }
    }
}

/// Decoders accept exactly what the encoders write (fixed-size messages) and
/// what they accept round-trips (file texts).
fn decoders(data: &[u8]) {
    if let Some(b) = data.first_chunk::<{ proto::HELLO_LEN }>() {
        if let Ok(o) = proto::parse_hello(b) {
            assert_eq!(&proto::hello(o), b);
        }
        if let Ok(f) = proto::parse_header(b) {
            assert_eq!(&proto::header(f), b);
        }
    }
    if let Some(b) = data.first_chunk::<{ proto::STATUS_LEN }>() {
        if let Ok(s) = proto::parse_status(b) {
            assert_eq!(&proto::status(&s), b, "STATUS accepted non-canonical bytes");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(e) = parse_exit_status(text) {
            let want = exit_status_text(e);
            assert_eq!(parse_exit_status(&want), Ok(e));
            // Numbers may be spelled differently ("+3", "03"), but the
            // file has the same lines and words as the one written.
            let words = |t: &str| t.lines().map(|l| l.split(' ').count()).collect::<Vec<_>>();
            assert_eq!(words(text), words(&want), "exit_status {text:?} accepted");
            assert!((0..=383).contains(&e.code()));
        }
        if let Some(c) = parse_cursors(text) {
            assert_eq!(parse_cursors(&cursors_text(c)), Some(c));
        }
    }
    // Encoders from the same bytes: decode(encode(x)) == x.
    let mut s = Script(data);
    let (kind, code, core) = (s.u8(), s.u8(), s.u8() & 1 == 1);
    let exit = exit_of(kind, code, core);
    let st = Status {
        exit,
        stdout_end: s.u64(),
        stderr_end: s.u64(),
    };
    assert_eq!(proto::parse_status(&proto::status(&st)), Ok(st));
    assert_eq!(parse_exit_status(&exit_status_text(exit)), Ok(exit));
    let c = Cursors {
        stdout: st.stdout_end,
        stderr: st.stderr_end,
    };
    assert_eq!(parse_cursors(&cursors_text(c)), Some(c));
    assert_eq!(proto::parse_hello(&proto::hello(c.stdout)), Ok(c.stdout));
    assert_eq!(proto::parse_header(&proto::header(c.stderr)), Ok(c.stderr));
}

/// The spawner's ACK reader against a model that sees the whole byte
/// stream at once: the same verdict and the same `acked()`, which never
/// decreases and never passes what was sent.
fn acks(data: &[u8]) {
    let mut s = Script(data);
    let first = u64::from(s.u16());
    let mut r = AckReader::new(first);
    let mut sent = first;
    let mut stream: Vec<u8> = Vec::new();
    let mut sent_when: Vec<u64> = Vec::new(); // `sent` as each byte arrived
    let mut model_acked = first;
    while !s.done() && stream.len() < 4096 {
        let op = s.u8();
        match op % 4 {
            0 => sent = sent.saturating_add(u64::from(s.u16())),
            1 | 2 => {
                // An ACK: valid (within [acked, sent]) or raw bytes.
                let a = if op % 4 == 1 {
                    let room = sent - model_acked;
                    model_acked + u64::from(s.u16()) % (room + 1)
                } else {
                    s.u64()
                };
                let bytes = proto::ack(a);
                let cut = usize::from(s.u8()) % (proto::ACK_LEN + 1);
                for piece in [&bytes[..cut], &bytes[cut..]] {
                    let before = r.acked();
                    stream.extend_from_slice(piece);
                    sent_when.resize(sent_when.len() + piece.len(), sent);
                    let got = r.feed(piece, sent);
                    // The model: every complete ACK of the stream so far.
                    let mut want = Ok(());
                    let mut m = first;
                    for (i, c) in stream.chunks_exact(proto::ACK_LEN).enumerate() {
                        let v = u64::from_le_bytes(c.try_into().unwrap());
                        let at = sent_when[i * proto::ACK_LEN + proto::ACK_LEN - 1];
                        if v < m || v > at {
                            want = Err(());
                            break;
                        }
                        m = v;
                    }
                    assert_eq!(got.is_ok(), want.is_ok(), "verdict differs from the model");
                    if got.is_err() {
                        return;
                    }
                    assert_eq!(r.acked(), m);
                    assert!(r.acked() >= before && r.acked() <= sent);
                    model_acked = m;
                }
            }
            _ => {
                // Raw bytes, in one piece.
                let n = usize::from(s.u8() % 16);
                let piece: Vec<u8> = (0..n).map(|_| s.u8()).collect();
                stream.extend_from_slice(&piece);
                sent_when.resize(sent_when.len() + piece.len(), sent);
                let before = r.acked();
                if r.feed(&piece, sent).is_err() {
                    return;
                }
                assert!(r.acked() >= before && r.acked() <= sent);
                model_acked = r.acked();
            }
        }
    }
}

/// The ring against a model holding every byte ever written: `start`,
/// `end`, dropped counts and the bytes `read_from` returns for any offset
/// (including those a HELLO can name: before `start`, past `end`).
fn ring(data: &[u8]) {
    let mut s = Script(data);
    let cap = 1 + usize::from(s.u8() % 64);
    let mut r = Ring::new(cap);
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut model_start = 0u64;
    let mut next = 0u8;
    while !s.done() {
        let op = s.u8();
        if op & 1 == 0 {
            let max = usize::from(op >> 1) % (2 * cap + 1);
            let spare = r.spare(max);
            assert!(spare.len() <= max && spare.len() <= cap);
            let n = spare.len().min(usize::from(s.u8()) % (cap + 1));
            for b in &mut spare[..n] {
                *b = next;
                model.push_back(next);
                next = next.wrapping_add(1);
            }
            let dropped = r.commit(n);
            let mut want = 0;
            while model.len() > cap {
                model.pop_front();
                model_start += 1;
                want += 1;
            }
            assert_eq!(dropped, want);
        } else {
            let back = u64::from(s.u8() % 80);
            let from = (model_start + model.len() as u64 + 8).saturating_sub(back);
            let got = r.read_from(from);
            let end = model_start + model.len() as u64;
            if from < model_start || from > end {
                assert!(
                    got.is_none(),
                    "read_from({from}) outside [{model_start}, {end}]"
                );
            } else {
                let (a, b) = got.expect("offset inside the ring");
                let want: Vec<u8> = model
                    .iter()
                    .skip((from - model_start) as usize)
                    .copied()
                    .collect();
                assert_eq!([a, b].concat(), want);
                assert!(b.is_empty() || a.len() + b.len() <= cap);
            }
        }
        assert_eq!(r.start(), model_start);
        assert_eq!(r.end(), model_start + model.len() as u64);
        assert_eq!(r.len(), model.len());
        assert!(r.len() <= r.cap());
    }
}

/// Runs every property on one input.
pub fn check_proto(data: &[u8]) {
    decoders(data);
    acks(data);
    ring(data);
}

/// Valid messages and files: the `iomux_proto` target's seeds.
pub fn seeds() -> Vec<Vec<u8>> {
    let st = |exit, o, e| {
        proto::status(&Status {
            exit,
            stdout_end: o,
            stderr_end: e,
        })
        .to_vec()
    };
    let mut v = vec![
        proto::hello(0).to_vec(),
        proto::hello(1 << 40).to_vec(),
        proto::header(4096).to_vec(),
        st(Exit::Exited(0), 12, 0),
        st(
            Exit::Signaled {
                sig: 9,
                core: false,
            },
            1 << 33,
            5,
        ),
        st(
            Exit::Signaled {
                sig: 11,
                core: true,
            },
            0,
            0,
        ),
        [proto::hello(3), proto::hello(3)].concat(),
        [proto::ack(1), proto::ack(2), proto::ack(3)].concat(),
    ];
    for e in [
        Exit::Exited(3),
        Exit::Signaled { sig: 6, core: true },
        Exit::Signaled {
            sig: 15,
            core: false,
        },
    ] {
        v.push(exit_status_text(e).into_bytes());
    }
    v.push(
        cursors_text(Cursors {
            stdout: 1234,
            stderr: u64::MAX,
        })
        .into_bytes(),
    );
    // Scripts: ACKs in pieces after data was sent; ring writes and reads.
    v.push(vec![
        10, 0, 0, 100, 0, 1, 5, 0, 3, 1, 7, 0, 8, 3, 4, 1, 2, 3, 4,
    ]);
    v.push(vec![7, 0x40, 9, 1, 3, 0x41, 40, 1, 0, 0x7e, 12, 1, 70]);
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
