//! The standard cogs of tourbillon.
#![warn(missing_docs)]
