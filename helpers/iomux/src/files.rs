//! On-disk formats of iomux: the job's `exit_status` file and a linker's
//! cursors file. Both are small text files written atomically (temp file in
//! the same directory, rename), so a reader sees the old or the new content,
//! never a torn one. Readers read at most [`MAX_FILE`] bytes. No fsync: they
//! must outlive the process that writes them, not the host (the job and the
//! output they describe do not survive a host crash either); it cost two
//! fsyncs on every job's path to its reply.
//!
//! `DIR/exit_status`, written by iomux-spawn when the job has exited:
//! ```text
//! 137
//! signaled 9
//! ```
//! Line 1: the decimal status, exit code or 128+N for signal N.
//! Line 2: `exited N` or `signaled N` (or `signaled N core` when a core was
//! dumped), telling the two apart.
//!
//! Cursors file (`iomux-link -w PATH`):
//! ```text
//! iomux-cursors 1
//! stdout 1234
//! stderr 0
//! ```
//! The offsets (u64, decimal) of the next byte iomux-link would copy to its
//! stdout and stderr. A missing file means both 0.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::proto::Exit;

/// Largest file either reader accepts.
pub const MAX_FILE: u64 = 4096;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{path}: malformed ({why})")]
    Malformed { path: PathBuf, why: &'static str },
}

/// Stream cursors of a linker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursors {
    pub stdout: u64,
    pub stderr: u64,
}

/// Writes `data` to `path` atomically (temp + rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let io = |err| FileError::Io {
        path: path.to_path_buf(),
        err,
    };
    let name = path.file_name().ok_or_else(|| FileError::Malformed {
        path: path.to_path_buf(),
        why: "no file name",
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(io)
}

fn read_small(path: &Path) -> Result<Option<String>, FileError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(FileError::Io {
                path: path.to_path_buf(),
                err,
            })
        }
    };
    let mut s = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut s)
        .map_err(|err| FileError::Io {
            path: path.to_path_buf(),
            err,
        })?;
    if s.len() as u64 > MAX_FILE {
        return Err(FileError::Malformed {
            path: path.to_path_buf(),
            why: "too large",
        });
    }
    Ok(Some(s))
}

/// Text of the `exit_status` file for `exit`.
pub fn exit_status_text(exit: Exit) -> String {
    match exit {
        Exit::Exited(c) => format!("{c}\nexited {c}\n"),
        Exit::Signaled { sig, core } => format!(
            "{}\nsignaled {sig}{}\n",
            exit.code(),
            if core { " core" } else { "" }
        ),
    }
}

/// Parses an `exit_status` file; `Ok(None)` when it does not exist.
pub fn read_exit_status(path: &Path) -> Result<Option<Exit>, FileError> {
    let Some(s) = read_small(path)? else {
        return Ok(None);
    };
    parse_exit_status(&s)
        .map(Some)
        .map_err(|why| FileError::Malformed {
            path: path.to_path_buf(),
            why,
        })
}

/// Parses the text of an `exit_status` file; the error says what is wrong.
pub fn parse_exit_status(s: &str) -> Result<Exit, &'static str> {
    let mut lines = s.lines();
    let code: i32 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("line 1 is not a number")?;
    let words: Vec<&str> = lines.next().ok_or("no line 2")?.split(' ').collect();
    let n = |w: Option<&&str>| w.and_then(|w| w.parse::<u8>().ok());
    let exit = match (
        words.first().copied(),
        n(words.get(1)),
        words.get(2).copied(),
        words.len(),
    ) {
        (Some("exited"), Some(c), None, 2) => Exit::Exited(c),
        (Some("signaled"), Some(sig), None, 2) => Exit::Signaled { sig, core: false },
        (Some("signaled"), Some(sig), Some("core"), 3) => Exit::Signaled { sig, core: true },
        _ => return Err("line 2 is not `exited N` or `signaled N`"),
    };
    if exit.code() != code || lines.next().is_some() {
        return Err("lines disagree");
    }
    Ok(exit)
}

/// Text of a cursors file.
pub fn cursors_text(c: Cursors) -> String {
    format!(
        "iomux-cursors 1\nstdout {}\nstderr {}\n",
        c.stdout, c.stderr
    )
}

/// Reads a cursors file; a missing file gives zero cursors.
pub fn read_cursors(path: &Path) -> Result<Cursors, FileError> {
    let Some(s) = read_small(path)? else {
        return Ok(Cursors::default());
    };
    parse_cursors(&s).ok_or_else(|| FileError::Malformed {
        path: path.to_path_buf(),
        why: "expected `iomux-cursors 1`, `stdout N`, `stderr N`",
    })
}

/// Parses the text of a cursors file.
pub fn parse_cursors(s: &str) -> Option<Cursors> {
    let mut lines = s.lines();
    if lines.next()? != "iomux-cursors 1" {
        return None;
    }
    let stdout = lines.next()?.strip_prefix("stdout ")?.parse().ok()?;
    let stderr = lines.next()?.strip_prefix("stderr ")?.parse().ok()?;
    if lines.next().is_some() {
        return None;
    }
    Some(Cursors { stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "iomux-files-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn exit_status_round_trip() {
        let d = tmpdir();
        let p = d.join("exit_status");
        assert!(read_exit_status(&p).unwrap().is_none());
        for e in [
            Exit::Exited(0),
            Exit::Exited(42),
            Exit::Signaled {
                sig: 9,
                core: false,
            },
            Exit::Signaled { sig: 6, core: true },
        ] {
            write_atomic(&p, exit_status_text(e).as_bytes()).unwrap();
            assert_eq!(read_exit_status(&p).unwrap(), Some(e));
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "134\nsignaled 6 core\n");
        fs::write(&p, "1\nexited 2\n").unwrap();
        assert!(read_exit_status(&p).is_err());
        fs::write(&p, "x").unwrap();
        assert!(read_exit_status(&p).is_err());
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "no temp file left");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn cursors_round_trip_and_reject() {
        let d = tmpdir();
        let p = d.join("cursors");
        assert_eq!(read_cursors(&p).unwrap(), Cursors::default());
        let c = Cursors {
            stdout: u64::MAX,
            stderr: 5,
        };
        write_atomic(&p, cursors_text(c).as_bytes()).unwrap();
        assert_eq!(read_cursors(&p).unwrap(), c);
        for bad in [
            "",
            "iomux-cursors 2\nstdout 1\nstderr 1\n",
            "iomux-cursors 1\nstdout -1\nstderr 1\n",
            "iomux-cursors 1\nstdout 1\n",
            "iomux-cursors 1\nstdout 1\nstderr 1\nextra\n",
        ] {
            fs::write(&p, bad).unwrap();
            assert!(read_cursors(&p).is_err(), "{bad:?}");
        }
        fs::write(&p, vec![b'a'; 5000]).unwrap();
        assert!(read_cursors(&p).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
