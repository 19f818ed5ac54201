//! Target devices for hwnas: what the search optimises latency for.
//!
//! This crate describes the machine a model runs on ([`host`]) so measurements can be
//! keyed and compared by where they were taken.

pub mod host;

pub use host::HostInfo;
