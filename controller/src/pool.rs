//! Resource pools: network /30 indexes, uids, host ports.
//!
//! A pool hands out integers from a fixed range in FIFO order. Released
//! values come back only after the pool's release delay, so a value freed by
//! a destroyed container is not reused at once (warden's `release_delay`).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pool {
    free: VecDeque<u32>,
    used: HashSet<u32>,
    delayed: VecDeque<(Instant, u32)>,
    delay: Duration,
    start: u32,
    len: u32,
}

impl Pool {
    /// Values `start .. start+len`.
    pub fn new(start: u32, len: u32, delay: Duration) -> Pool {
        Pool {
            free: (start..start.saturating_add(len)).collect(),
            used: HashSet::new(),
            delayed: VecDeque::new(),
            delay,
            start,
            len,
        }
    }

    fn reclaim(&mut self) {
        let now = Instant::now();
        while let Some(&(t, v)) = self.delayed.front() {
            if t > now {
                break;
            }
            self.delayed.pop_front();
            self.free.push_back(v);
        }
    }

    pub fn contains(&self, v: u32) -> bool {
        v >= self.start && (v - self.start) < self.len
    }

    /// Takes the next free value.
    pub fn acquire(&mut self) -> Option<u32> {
        self.reclaim();
        let v = self.free.pop_front()?;
        self.used.insert(v);
        Some(v)
    }

    /// Takes one given value; false when it is in use or outside the pool
    /// (a value outside the pool is not tracked and so always "taken").
    pub fn take(&mut self, v: u32) -> bool {
        if !self.contains(v) {
            return false;
        }
        self.reclaim();
        if let Some(i) = self.free.iter().position(|&x| x == v) {
            self.free.remove(i);
            self.used.insert(v);
            return true;
        }
        if let Some(i) = self.delayed.iter().position(|&(_, x)| x == v) {
            self.delayed.remove(i);
            self.used.insert(v);
            return true;
        }
        false
    }

    /// Returns a value; it becomes free after the release delay.
    pub fn release(&mut self, v: u32) {
        if self.used.remove(&v) {
            if self.delay.is_zero() {
                self.free.push_back(v);
            } else {
                self.delayed.push_back((Instant::now() + self.delay, v));
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_delay() {
        let mut p = Pool::new(10, 2, Duration::from_millis(50));
        assert_eq!(p.acquire(), Some(10));
        assert_eq!(p.acquire(), Some(11));
        assert_eq!(p.acquire(), None);
        p.release(10);
        assert_eq!(
            p.acquire(),
            None,
            "released value comes back only after the delay"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.acquire(), Some(10));
        p.release(99); // not in use: ignored
        assert_eq!(p.in_use(), 2);
    }

    #[test]
    fn take_specific() {
        let mut p = Pool::new(0, 4, Duration::ZERO);
        assert!(p.take(2));
        assert!(!p.take(2));
        assert!(!p.take(7));
        assert_eq!(p.acquire(), Some(0));
        assert_eq!(p.acquire(), Some(1));
        assert_eq!(p.acquire(), Some(3));
        p.release(2);
        assert_eq!(p.acquire(), Some(2));
    }
}
