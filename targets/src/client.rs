//! The host's side: a client for one agent, and a fleet that spreads a batch of models over
//! several agents of the same device model, moving the jobs of a dead or silent agent to
//! the others and returning results in the caller's order.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::RngCore;

use crate::error::{Error, Result};
use crate::frame::{DEFAULT_MAX_FRAME, receive_within, send};
use crate::protocol::{
    AgentMessage, ClientMessage, NONCE_LEN, PROTOCOL_VERSION, WireFingerprint, WireProtocol,
    WireStats, agent_proof, client_proof, proofs_equal,
};

/// An authenticated connection to one agent.
pub struct AgentClient {
    stream: TcpStream,
    address: String,
    fingerprint: WireFingerprint,
    job_timeout: Duration,
}

/// How long connecting and authenticating to an agent may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A handshake that failed for want of an answer says so and names the agent.
fn handshake_error(address: &str, error: Error) -> Error {
    match error {
        Error::Io { error: e, .. }
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Error::Protocol(format!(
                "agent {address} accepted the connection but did not complete the handshake within {} s (not an hwnas agent, or hung)",
                HANDSHAKE_TIMEOUT.as_secs()
            ))
        }
        other => other,
    }
}

impl AgentClient {
    /// Connects and authenticates both ways within [`HANDSHAKE_TIMEOUT`] (or `timeout`, if
    /// shorter); `timeout` then bounds each answer to a job, start to end.
    pub fn connect(address: &str, token: &[u8], timeout: Duration) -> Result<Self> {
        let handshake = timeout.min(HANDSHAKE_TIMEOUT);
        let handshake_ends = std::time::Instant::now() + handshake;
        let left = || handshake_ends.saturating_duration_since(std::time::Instant::now());
        let addresses: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(address)
            .map_err(|e| Error::io(format!("agent address {address}"), e))?
            .collect();
        let first = addresses.first().ok_or_else(|| {
            Error::Protocol(format!("agent address {address} resolves to nothing"))
        })?;
        let mut stream = TcpStream::connect_timeout(first, handshake)
            .map_err(|e| Error::io(format!("connecting to {address}"), e))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| Error::io("setting a timeout", e))?;
        let mut client_nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut client_nonce);
        send(
            &mut stream,
            &ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                nonce: client_nonce,
            },
        )?;
        let (agent_nonce, proof) = match receive_within::<AgentMessage>(&stream, 4096, left())
            .map_err(|e| handshake_error(address, e))?
        {
            AgentMessage::Challenge {
                version,
                nonce,
                proof,
            } if version == PROTOCOL_VERSION => (nonce, proof),
            AgentMessage::Challenge { version, .. } => {
                return Err(Error::Protocol(format!(
                    "agent {address} speaks protocol {version}, this hwnas {PROTOCOL_VERSION}"
                )));
            }
            AgentMessage::Refused { reason } => {
                return Err(Error::Auth(format!("agent {address} refused: {reason}")));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "agent {address} answered {other:?}"
                )));
            }
        };
        // The proof goes out either way, so an agent with another token logs the refusal;
        // an HMAC reveals nothing of the token.
        send(
            &mut stream,
            &ClientMessage::Auth {
                proof: client_proof(token, &agent_nonce, &client_nonce),
            },
        )?;
        if !proofs_equal(&proof, &agent_proof(token, &client_nonce, &agent_nonce)) {
            return Err(Error::Auth(format!(
                "agent {address} does not know the token (wrong token file, or not an hwnas agent)"
            )));
        }
        match receive_within::<AgentMessage>(&stream, 4096, left())
            .map_err(|e| handshake_error(address, e))?
        {
            AgentMessage::Welcome { fingerprint } => Ok(AgentClient {
                stream,
                address: address.to_string(),
                fingerprint,
                job_timeout: timeout,
            }),
            AgentMessage::Refused { reason } => {
                Err(Error::Auth(format!("agent {address} refused: {reason}")))
            }
            other => Err(Error::Protocol(format!(
                "agent {address} answered {other:?}"
            ))),
        }
    }

    /// The agent's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Where the agent measures.
    pub fn fingerprint(&self) -> &WireFingerprint {
        &self.fingerprint
    }

    /// Profiles one model; `Ok(Err(reason))` when the agent could not profile it.
    pub fn profile(
        &mut self,
        job: u64,
        model: &[u8],
        protocol: &WireProtocol,
    ) -> Result<std::result::Result<(WireStats, WireFingerprint), String>> {
        send(
            &mut self.stream,
            &ClientMessage::Profile {
                job,
                model: model.to_vec(),
                protocol: *protocol,
            },
        )?;
        // Each answer within the job timeout: a job queued behind others starts its clock
        // again with each word from the agent that it is still waiting.
        loop {
            match receive_within::<AgentMessage>(&self.stream, DEFAULT_MAX_FRAME, self.job_timeout)?
            {
                AgentMessage::Queued { .. } => continue,
                // The agent will not take this model (over its size cap): a failure of the
                // model, not of the agent.
                AgentMessage::Refused { reason } => return Ok(Err(reason)),
                AgentMessage::Measured {
                    job: j,
                    stats,
                    fingerprint,
                } if j == job => return Ok(Ok((stats, fingerprint))),
                AgentMessage::Failed { job: j, reason } if j == job => return Ok(Err(reason)),
                other => {
                    return Err(Error::Protocol(format!(
                        "agent {} answered {other:?}",
                        self.address
                    )));
                }
            }
        }
    }

    /// Says goodbye.
    pub fn close(mut self) {
        let _ = send(&mut self.stream, &ClientMessage::Bye);
    }
}

/// One model's result from a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetResult {
    /// The agent that measured it.
    pub agent: String,
    /// Timings and where they were taken, or why the agent could not profile the model.
    pub outcome: std::result::Result<(WireStats, WireFingerprint), String>,
}

/// Profiles `models` over `agents`, in parallel, one connection per agent. When an agent
/// fails (connection lost, timeout), its job goes back to the queue for the others.
/// `job_timeout` bounds each read (a whole profile). Results are in `models`' order.
pub fn profile_fleet(
    agents: &[String],
    token: &[u8],
    models: &[Vec<u8>],
    protocol: &WireProtocol,
    job_timeout: Duration,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Vec<FleetResult>> {
    let queue = Mutex::new((0..models.len()).collect::<VecDeque<usize>>());
    let results: Mutex<Vec<Option<FleetResult>>> = Mutex::new(vec![None; models.len()]);
    let in_flight = AtomicUsize::new(0);
    let last_error = Mutex::new(String::from("no agent was listed"));
    std::thread::scope(|scope| {
        for address in agents {
            let (queue, results, in_flight, last_error) =
                (&queue, &results, &in_flight, &last_error);
            scope.spawn(move || {
                let fail = |job: Option<usize>, error: Error| {
                    if let Some(job) = job {
                        queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_front(job);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                    log(&format!("agent {address} dropped: {error}"));
                    *last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        format!("{address}: {error}");
                };
                let mut client = match AgentClient::connect(address, token, job_timeout) {
                    Ok(c) => c,
                    Err(e) => return fail(None, e),
                };
                loop {
                    let job = {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let job = q.pop_front();
                        if job.is_some() {
                            in_flight.fetch_add(1, Ordering::SeqCst);
                        }
                        job
                    };
                    let Some(job) = job else {
                        if in_flight.load(Ordering::SeqCst) == 0 {
                            client.close();
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    match client.profile(job as u64, &models[job], protocol) {
                        Ok(outcome) => {
                            results.lock().unwrap_or_else(|p| p.into_inner())[job] =
                                Some(FleetResult {
                                    agent: address.clone(),
                                    outcome,
                                });
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                        Err(e) => return fail(Some(job), e),
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let left = results.iter().filter(|r| r.is_none()).count();
    if left > 0 {
        return Err(Error::FleetExhausted {
            left,
            last: last_error.into_inner().unwrap_or_else(|p| p.into_inner()),
        });
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect())
}
