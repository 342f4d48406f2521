//! Supplies: the cogs that bring data into a train.
//!
//! The other supplies live with the subsystem they belong to: the program
//! server in [`program`](crate::program), the JetStream consumer in
//! `jetstream` (feature `nats`).

pub mod listen;
pub mod stdin;
pub mod tail;
pub mod tick;
