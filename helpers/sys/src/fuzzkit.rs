//! Shared by the fuzz targets' property modules (`*/src/fuzz.rs`) and the
//! tests that replay their saved regressions: a byte-script reader and the
//! replay loop. (No `unsafe` here; it sits beside [`crate::alloc`], the
//! allocator those same binaries install.)

use std::path::Path;

/// Reads a fuzz input as a script of values; past its end every read is 0
/// (or empty), so any input is a complete script.
pub struct Script<'a>(pub &'a [u8]);

impl Script<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.u8());
        u64::from_le_bytes(b)
    }
    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        h.to_vec()
    }
    /// A string of up to `max` bytes (length from the script, invalid
    /// UTF-8 replaced).
    pub fn string(&mut self, max: usize) -> String {
        let n = usize::from(self.u16()) % (max + 1);
        String::from_utf8_lossy(&self.bytes(n)).into_owned()
    }
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs `check` on every file in `fuzz/regressions/<target>/` below the
/// workspace root `workspace` (dot files skipped); returns how many.
/// Panics when the directory cannot be read.
pub fn replay(workspace: &Path, target: &str, check: impl Fn(&[u8])) -> usize {
    let dir = workspace.join("fuzz/regressions").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        eprintln!("replaying {}", p.display());
        check(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
        n += 1;
    }
    eprintln!("{target}: {n} inputs replayed");
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_reads_then_zeroes() {
        let mut s = Script(&[1, 2, 3, 4, 5]);
        assert_eq!(s.u8(), 1);
        assert_eq!(s.u16(), 0x0302);
        assert_eq!(s.bytes(5), vec![4, 5]);
        assert!(s.done());
        assert_eq!(s.u64(), 0);
        assert!(s.bytes(3).is_empty());
    }
}
