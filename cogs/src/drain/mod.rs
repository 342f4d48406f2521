//! Drains: the cogs that write data out at the end of a train.
//!
//! The JetStream publisher lives in `jetstream` (feature `nats`).

pub(crate) mod batch;
pub mod connect;
pub mod file;
pub mod stdout;

use crate::meter::{Figure, Probe};
use crate::Counter;

/// What every drain tells beyond its meter, readable while it runs;
/// clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct DrainGauges {
    /// Data written out (and, for the batching drains, reported done).
    pub written: Counter,
    /// Writes that failed.
    pub write_errors: Counter,
    /// Bytes held, not yet written (or written, not yet reported done).
    pub buffered: Counter,
    /// Writes tried again after one failed.
    pub retries: Counter,
}

impl Probe for DrainGauges {
    fn read(&self, out: &mut Vec<Figure>) {
        out.push(Figure::counter(
            "drain_written_total",
            "Data a drain wrote out.",
            self.written.get(),
        ));
        out.push(Figure::counter(
            "drain_write_errors_total",
            "Writes of a drain that failed.",
            self.write_errors.get(),
        ));
        out.push(Figure::gauge(
            "drain_buffered_bytes",
            "Bytes a drain holds that are not yet written.",
            self.buffered.get() as f64,
        ));
        out.push(Figure::counter(
            "drain_retries_total",
            "Writes a drain tried again after a failure.",
            self.retries.get(),
        ));
    }
}
