//! The agent protocol's messages, serialised with postcard. Versioned: both sides send
//! [`PROTOCOL_VERSION`] first and refuse another. Authentication is mutual HMAC-SHA256
//! challenge-response over a shared token, which never crosses the wire:
//!
//! 1. client -> agent: [`ClientMessage::Hello`] with a fresh client nonce;
//! 2. agent -> client: [`AgentMessage::Challenge`] with a fresh agent nonce and the agent's
//!    proof `HMAC(token, "hwnas-agent" | client nonce | agent nonce)`;
//! 3. client checks it, then sends [`ClientMessage::Auth`] with its own proof
//!    `HMAC(token, "hwnas-client" | agent nonce | client nonce)`;
//! 4. agent checks it and answers [`AgentMessage::Welcome`] or [`AgentMessage::Refused`].
//!
//! This module builds without std.

use alloc::string::String;
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The protocol version both sides must speak.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes in a nonce and in a proof.
pub const NONCE_LEN: usize = 32;

/// How a model is timed on the agent (mirrors the profiler's protocol).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireProtocol {
    /// Untimed runs first.
    pub warmup: u32,
    /// Timed runs at least.
    pub min_runs: u32,
    /// Timed runs at most.
    pub max_runs: u32,
    /// Stop once the median's 95% confidence half-width is below this share.
    pub rel_ci: f64,
    /// Stop after this many seconds (never before `min_runs`).
    pub max_seconds: f64,
    /// Intra-op threads.
    pub threads: u32,
}

/// Timing statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireStats {
    /// Median.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Standard deviation.
    pub std_ms: f64,
    /// Timed runs.
    pub runs: u32,
    /// The median's 95% confidence half-width as a share of it.
    pub median_rel_ci: f64,
}

/// Where the agent measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFingerprint {
    /// ONNX Runtime's version.
    pub ort_version: String,
    /// Execution provider.
    pub execution_provider: String,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cores: u32,
    /// Threads used.
    pub threads: u32,
    /// CPU frequency governor, if readable.
    pub governor: Option<String>,
    /// CPU architecture.
    pub arch: String,
}

/// Messages from the client (the search host) to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Opens a connection.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u16,
        /// A fresh random nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// The client's proof of the token.
    Auth {
        /// `HMAC(token, "hwnas-client" | agent nonce | client nonce)`.
        proof: [u8; NONCE_LEN],
    },
    /// Profile one ONNX model.
    Profile {
        /// The client's identifier for the job, echoed in the answer.
        job: u64,
        /// The model's bytes.
        model: Vec<u8>,
        /// How to time it.
        protocol: WireProtocol,
    },
    /// Closes the connection.
    Bye,
}

/// Messages from the agent to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// Answers [`ClientMessage::Hello`].
    Challenge {
        /// The agent's [`PROTOCOL_VERSION`].
        version: u16,
        /// A fresh random nonce.
        nonce: [u8; NONCE_LEN],
        /// `HMAC(token, "hwnas-agent" | client nonce | agent nonce)`.
        proof: [u8; NONCE_LEN],
    },
    /// Authentication succeeded.
    Welcome {
        /// Where this agent measures.
        fingerprint: WireFingerprint,
    },
    /// The connection is refused; the agent closes it.
    Refused {
        /// Why.
        reason: String,
    },
    /// The job waits behind others (the agent profiles one model at a time).
    Queued {
        /// The job.
        job: u64,
        /// Jobs ahead of it.
        ahead: u32,
    },
    /// A finished job.
    Measured {
        /// The job.
        job: u64,
        /// Its timings.
        stats: WireStats,
        /// Where they were taken.
        fingerprint: WireFingerprint,
    },
    /// A job that could not be profiled (a bad model, say).
    Failed {
        /// The job.
        job: u64,
        /// Why.
        reason: String,
    },
}

fn proof(
    token: &[u8],
    role: &[u8],
    first: &[u8; NONCE_LEN],
    second: &[u8; NONCE_LEN],
) -> [u8; NONCE_LEN] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(token).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(first);
    mac.update(second);
    mac.finalize().into_bytes().into()
}

/// The agent's proof for a pair of nonces.
pub fn agent_proof(
    token: &[u8],
    client_nonce: &[u8; NONCE_LEN],
    agent_nonce: &[u8; NONCE_LEN],
) -> [u8; NONCE_LEN] {
    proof(token, b"hwnas-agent", client_nonce, agent_nonce)
}

/// The client's proof for a pair of nonces.
pub fn client_proof(
    token: &[u8],
    agent_nonce: &[u8; NONCE_LEN],
    client_nonce: &[u8; NONCE_LEN],
) -> [u8; NONCE_LEN] {
    proof(token, b"hwnas-client", agent_nonce, client_nonce)
}

/// Compares two proofs in time independent of where they differ.
pub fn proofs_equal(a: &[u8; NONCE_LEN], b: &[u8; NONCE_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Encodes a message with postcard.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(message)
}

/// Decodes a message with postcard.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_differ_by_role_token_and_nonce() {
        let (a, b) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let agent = agent_proof(b"secret", &a, &b);
        assert_ne!(agent, client_proof(b"secret", &b, &a));
        assert_ne!(agent, agent_proof(b"other", &a, &b));
        assert_ne!(agent, agent_proof(b"secret", &b, &a));
        assert!(proofs_equal(&agent, &agent_proof(b"secret", &a, &b)));
    }

    #[test]
    fn messages_round_trip() {
        let message = ClientMessage::Profile {
            job: 7,
            model: alloc::vec![1, 2, 3],
            protocol: WireProtocol {
                warmup: 10,
                min_runs: 50,
                max_runs: 100,
                rel_ci: 0.01,
                max_seconds: 30.0,
                threads: 1,
            },
        };
        let bytes = encode(&message).unwrap();
        assert_eq!(decode::<ClientMessage>(&bytes).unwrap(), message);
    }
}
