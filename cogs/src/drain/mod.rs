//! Drains: the cogs that write data out at the end of a train.
//!
//! The JetStream publisher lives in `jetstream` (feature `nats`).

pub(crate) mod batch;
pub mod connect;
pub mod file;
pub mod stdout;
