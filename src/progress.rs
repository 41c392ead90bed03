//! Progress reports from long operations (apply, fork, export, vacuum, gc), for whoever
//! wants to show them.
//!
//! The library only says how far it got through a [`Progress`]; drawing is the caller's
//! business (the `agentfs` binary draws a bar on a terminal's stderr). [`NoProgress`] hears
//! nothing, for callers that show nothing.
//!
//! An operation calls [`Progress::start`] once with what it knows of the total work, then
//! [`Progress::advance`] as parts of it are done, then [`Progress::finish`]. An operation
//! made of phases may repeat the three for each phase. When it fails half-way it may end
//! without `finish`.

/// Receives how far a long operation got. Every method takes `&self`, so one reporter can
/// be shared; an implementation that keeps counts uses interior mutability.
pub trait Progress {
    /// The operation `what` (a short verb such as "applying") begins; it will do
    /// `total_items` items and `total_bytes` bytes, where known in advance.
    fn start(&self, what: &str, total_items: Option<u64>, total_bytes: Option<u64>);
    /// `items` more items and `bytes` more bytes are done (both counts add up to the
    /// totals given to `start`, when those were known).
    fn advance(&self, items: u64, bytes: u64);
    /// The operation is over.
    fn finish(&self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total_items: Option<u64>, _total_bytes: Option<u64>) {}
    fn advance(&self, _items: u64, _bytes: u64) {}
    fn finish(&self) {}
}
