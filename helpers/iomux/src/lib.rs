//! iomux: loss-free multiplexing of a job's output to any number of readers.
//!
//! * [`spawn`]: iomux-spawn, runs the job and serves its output.
//! * [`link`]: iomux-link, copies a job's output and exit status.
//! * [`proto`]: the socket protocol between the two.
//! * [`ring`]: the u64-addressed ring buffer.
//! * [`files`]: `exit_status` and cursors file formats.

pub mod files;
#[doc(hidden)]
pub mod fuzz;
pub mod link;
pub mod proto;
pub mod ring;
pub mod spawn;
