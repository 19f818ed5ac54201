//! The agent: listens for hosts, authenticates them, and profiles the models they send, one
//! at a time (profiling must not share the CPU); later jobs queue.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;

use crate::error::{Error, Result};
use crate::frame::{discard, receive_within, send};
use crate::protocol::{
    AgentMessage, ClientMessage, NONCE_LEN, PROTOCOL_VERSION, WireFingerprint, WireProtocol,
    WireStats, agent_proof, client_proof, proofs_equal,
};

/// What the agent measures with (the latency crate's profiler, in the binary).
pub trait Profiler: Send + Sync {
    /// Where measurements with `threads` threads are taken.
    fn fingerprint(&self, threads: u32) -> WireFingerprint;
    /// Profiles a model's bytes.
    fn profile(
        &self,
        model: &[u8],
        protocol: &WireProtocol,
    ) -> std::result::Result<(WireStats, WireFingerprint), String>;
}

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The shared token; `None` only on loopback.
    pub token: Option<Vec<u8>>,
    /// The largest frame accepted (the largest model).
    pub max_frame: usize,
    /// Read timeout while authenticating.
    pub handshake_timeout: Duration,
    /// Read timeout between jobs on an authenticated connection.
    pub idle_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            token: None,
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Binds the listening socket; without a token only loopback addresses are allowed.
pub fn bind(listen: &str, token: Option<&[u8]>) -> Result<TcpListener> {
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(listen)
        .map_err(|e| Error::io(format!("--listen {listen}"), e))?
        .collect();
    if token.is_none() && addresses.iter().any(|a| !a.ip().is_loopback()) {
        return Err(Error::Auth(format!(
            "--listen {listen} is not a loopback address: without --token-file the agent only listens on 127.0.0.1 or ::1"
        )));
    }
    TcpListener::bind(addresses.as_slice()).map_err(|e| Error::io(format!("binding {listen}"), e))
}

struct Shared {
    config: AgentConfig,
    profiler: Arc<dyn Profiler>,
    job_lock: Mutex<()>,
    waiting: AtomicU32,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

/// Serves connections forever, one thread each; `log` receives one line per event
/// (connections, refusals, jobs).
pub fn serve(
    listener: TcpListener,
    config: AgentConfig,
    profiler: Arc<dyn Profiler>,
    log: Box<dyn Fn(&str) + Send + Sync>,
) -> Result<()> {
    let shared = Arc::new(Shared {
        config,
        profiler,
        job_lock: Mutex::new(()),
        waiting: AtomicU32::new(0),
        log,
    });
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                (shared.log)(&format!("accept failed: {e}"));
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into());
            match handle(stream, &shared) {
                Ok(()) => (shared.log)(&format!("{peer}: closed")),
                Err(e) => (shared.log)(&format!("{peer}: {e}")),
            }
        });
    }
    Ok(())
}

fn handle(mut stream: TcpStream, shared: &Shared) -> Result<()> {
    let config = &shared.config;
    stream
        .set_write_timeout(Some(config.write_timeout))
        .map_err(|e| Error::io("setting a timeout", e))?;
    // The whole handshake must be done within its timeout, however the peer paces its bytes.
    let handshake_ends = std::time::Instant::now() + config.handshake_timeout;
    let left = || handshake_ends.saturating_duration_since(std::time::Instant::now());
    // The handshake's frames are tiny: cap them hard, whatever the model cap.
    let client_nonce = match receive_within::<ClientMessage>(&stream, 1024, left())? {
        ClientMessage::Hello { version, nonce } if version == PROTOCOL_VERSION => nonce,
        ClientMessage::Hello { version, .. } => {
            let reason = format!(
                "protocol version {version} is not supported (this agent speaks {PROTOCOL_VERSION})"
            );
            send(
                &mut stream,
                &AgentMessage::Refused {
                    reason: reason.clone(),
                },
            )?;
            return Err(Error::Protocol(reason));
        }
        other => return Err(Error::Protocol(format!("expected Hello, got {other:?}"))),
    };
    let token = config.token.as_deref().unwrap_or(&[]);
    let mut agent_nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut agent_nonce);
    send(
        &mut stream,
        &AgentMessage::Challenge {
            version: PROTOCOL_VERSION,
            nonce: agent_nonce,
            proof: agent_proof(token, &client_nonce, &agent_nonce),
        },
    )?;
    let proof = match receive_within::<ClientMessage>(&stream, 1024, left())? {
        ClientMessage::Auth { proof } => proof,
        other => return Err(Error::Protocol(format!("expected Auth, got {other:?}"))),
    };
    if !proofs_equal(&proof, &client_proof(token, &agent_nonce, &client_nonce)) {
        let _ = send(
            &mut stream,
            &AgentMessage::Refused {
                reason: "wrong token".into(),
            },
        );
        return Err(Error::Auth("refused a client with the wrong token".into()));
    }
    send(
        &mut stream,
        &AgentMessage::Welcome {
            fingerprint: shared.profiler.fingerprint(1),
        },
    )?;
    (shared.log)(&format!(
        "{}: authenticated",
        stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    ));
    loop {
        let message = match receive_within::<ClientMessage>(
            &stream,
            config.max_frame,
            config.idle_timeout,
        ) {
            // Say why before closing, and take in what was sent so the close is clean.
            Err(Error::FrameTooLarge { announced, max }) => {
                let reason = format!(
                    "the model is {announced} bytes, over this agent's cap of {max} bytes (hwnas agent --max-model-mib)"
                );
                let _ = send(
                    &mut stream,
                    &AgentMessage::Refused {
                        reason: reason.clone(),
                    },
                );
                discard(&stream, announced, config.write_timeout);
                return Err(Error::Protocol(reason));
            }
            other => other?,
        };
        match message {
            ClientMessage::Profile {
                job,
                model,
                protocol,
            } => {
                let ahead = shared.waiting.fetch_add(1, Ordering::SeqCst);
                if ahead > 0 {
                    send(&mut stream, &AgentMessage::Queued { job, ahead })?;
                }
                let outcome = {
                    let _only_job = shared.job_lock.lock().unwrap_or_else(|p| p.into_inner());
                    shared.profiler.profile(&model, &protocol)
                };
                shared.waiting.fetch_sub(1, Ordering::SeqCst);
                match outcome {
                    Ok((stats, fingerprint)) => {
                        (shared.log)(&format!(
                            "job {job}: {} bytes, median {:.3} ms",
                            model.len(),
                            stats.median_ms
                        ));
                        send(
                            &mut stream,
                            &AgentMessage::Measured {
                                job,
                                stats,
                                fingerprint,
                            },
                        )?;
                    }
                    Err(reason) => {
                        (shared.log)(&format!("job {job} failed: {reason}"));
                        send(&mut stream, &AgentMessage::Failed { job, reason })?;
                    }
                }
            }
            ClientMessage::Bye => return Ok(()),
            other => return Err(Error::Protocol(format!("unexpected {other:?}"))),
        }
    }
}
