//! Target devices for hwnas: descriptions of what a search optimises latency for, this
//! machine's fingerprint, and the agent that profiles models on a remote board, with its
//! wire protocol.
//!
//! Without the default `std` feature only [`protocol`] is built, as `no_std` + `alloc`.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod protocol;

#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod description;
#[cfg(feature = "std")]
pub mod error;
#[cfg(feature = "std")]
pub mod frame;
#[cfg(feature = "std")]
pub mod host;

#[cfg(feature = "std")]
pub use description::{Target, TargetKind};
#[cfg(feature = "std")]
pub use error::{Error, Result};
#[cfg(feature = "std")]
pub use host::HostInfo;
