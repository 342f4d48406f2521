//! Steps: the cogs in the middle of a train, taking one datum and yielding
//! none, one or many.
//!
//! The program step lives with the rest of the programs in
//! [`program`](crate::program).

pub mod anonymize;
pub mod fields;
pub mod filter;
pub mod increment;
pub mod json;
pub mod lines;
pub mod multiline;
pub mod pace;
pub mod parse;
pub mod ratelimit;
pub mod rdns;
pub mod route;
pub mod sample;
pub mod stats;
pub mod syslog;
pub mod timestamp;
pub mod window;
