//! Tar header fields: numbers, strings, checksums and pax/GNU extended
//! records (see the module above for what is accepted).

use super::*;

/// Parses an octal or GNU base-256 number field.
pub(super) fn num(f: &[u8]) -> Result<u64, &'static str> {
    if f.is_empty() {
        return Ok(0);
    }
    if f[0] & 0x80 != 0 {
        if f[0] & 0x40 != 0 {
            return Err("negative number");
        }
        let mut v = u64::from(f[0] & 0x3f);
        for &b in &f[1..] {
            if v >> 56 != 0 {
                return Err("number too large");
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let mut i = 0;
    while i < f.len() && f[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < f.len() && (b'0'..=b'7').contains(&f[i]) {
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(f[i] - b'0')))
            .ok_or("number too large")?;
        i += 1;
    }
    if i < f.len() && f[i] != b' ' && f[i] != 0 {
        return Err("bad octal number");
    }
    Ok(v)
}

/// A NUL-terminated field.
pub(super) fn cstr(f: &[u8]) -> &[u8] {
    match f.iter().position(|b| *b == 0) {
        Some(n) => &f[..n],
        None => f,
    }
}

pub(super) fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Ok(stored) = num(&h[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).ok() == Some(signed)
}

/// Extended-header values waiting for their entry.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) pax_path: Option<Vec<u8>>,
    pub(super) pax_link: Option<Vec<u8>>,
    pub(super) pax_size: Option<u64>,
    pub(super) pax_mtime: Option<i64>,
    pub(super) gnu_name: Option<Vec<u8>>,
    pub(super) gnu_link: Option<Vec<u8>>,
}

pub(super) fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Parses pax records into `p` (`global`: a `g` header, only checked).
pub(super) fn parse_pax(data: &[u8], p: &mut Pending, global: bool) -> Result<(), &'static str> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .take(21)
            .position(|b| *b == b' ')
            .ok_or("bad pax record length")?;
        let len = parse_decimal(&rest[..sp]).ok_or("bad pax record length")?;
        let len = usize::try_from(len).map_err(|_| "bad pax record length")?;
        if len <= sp + 2 || len > rest.len() {
            return Err("bad pax record length");
        }
        let rec = &rest[sp + 1..len];
        rest = &rest[len..];
        let Some((&b'\n', body)) = rec.split_last() else {
            return Err("pax record without newline");
        };
        let eq = body
            .iter()
            .position(|b| *b == b'=')
            .ok_or("pax record without `=`")?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.starts_with(b"GNU.sparse") {
            return Err("sparse file refused");
        }
        let wanted = matches!(key, b"path" | b"linkpath" | b"size" | b"mtime");
        if global {
            if wanted && key != b"mtime" {
                return Err("global pax header with path, linkpath or size refused");
            }
            continue;
        }
        // An empty value deletes the keyword (POSIX pax).
        let value = (!value.is_empty()).then_some(value);
        match key {
            b"path" => p.pax_path = value.map(<[u8]>::to_vec),
            b"linkpath" => p.pax_link = value.map(<[u8]>::to_vec),
            b"size" => {
                p.pax_size = match value {
                    None => None,
                    Some(v) => Some(parse_decimal(v).ok_or("bad pax size")?),
                }
            }
            b"mtime" => {
                p.pax_mtime = value.map(|v| {
                    let int = v.split(|b| *b == b'.').next().unwrap_or_default();
                    let (neg, digits) = match int.split_first() {
                        Some((b'-', d)) => (true, d),
                        _ => (false, int),
                    };
                    let m = parse_decimal(digits)
                        .and_then(|m| i64::try_from(m).ok())
                        .unwrap_or(0);
                    if neg {
                        0
                    } else {
                        m
                    }
                })
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn pad_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}
