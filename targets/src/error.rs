//! Errors of the targets crate.

use std::path::PathBuf;

/// What can go wrong reading a target or talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A network or file operation failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error (part of the message, not a separate cause).
        error: std::io::Error,
    },
    /// A frame announced more bytes than allowed; nothing was allocated for it.
    #[error("a frame announced {announced} bytes, over the {max}-byte cap")]
    FrameTooLarge {
        /// The announced length.
        announced: u64,
        /// The cap.
        max: usize,
    },
    /// A frame that is not a message of the protocol.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// The peer broke the protocol (wrong version, unexpected message).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Authentication failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A target description with a problem; the text names the line and key.
    #[error("{}: {problem}", file.display())]
    Target {
        /// The file.
        file: PathBuf,
        /// What is wrong, where, and the fix.
        problem: String,
    },
    /// Every agent of a fleet failed with jobs left.
    #[error("every agent failed with {left} model(s) left; last error: {last}")]
    FleetExhausted {
        /// Jobs not measured.
        left: usize,
        /// The last agent error.
        last: String,
    },
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            error: source,
        }
    }
}

/// The targets crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
