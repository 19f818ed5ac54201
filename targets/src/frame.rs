//! Length-prefixed frames: a 4-byte little-endian length, then that many bytes of postcard.
//! The length is checked against the cap before anything is allocated.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The default cap on a frame: 256 MiB (the largest ONNX model an agent accepts).
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// Writes one frame.
pub fn write_frame(writer: &mut impl Write, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::FrameTooLarge {
        announced: payload.len() as u64,
        max: u32::MAX as usize,
    })?;
    writer
        .write_all(&len.to_le_bytes())
        .map_err(|e| Error::io("writing a frame", e))?;
    writer
        .write_all(payload)
        .map_err(|e| Error::io("writing a frame", e))?;
    writer.flush().map_err(|e| Error::io("writing a frame", e))
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame(reader: &mut impl Read, max: usize) -> Result<Vec<u8>> {
    let mut header = [0u8; 4];
    reader
        .read_exact(&mut header)
        .map_err(|e| Error::io("reading a frame header", e))?;
    let announced = u32::from_le_bytes(header) as usize;
    if announced > max {
        return Err(Error::FrameTooLarge {
            announced: announced as u64,
            max,
        });
    }
    let mut payload = vec![0u8; announced];
    reader
        .read_exact(&mut payload)
        .map_err(|e| Error::io("reading a frame body", e))?;
    Ok(payload)
}

/// Encodes and writes a message.
pub fn send<T: Serialize>(writer: &mut impl Write, message: &T) -> Result<()> {
    let bytes = crate::protocol::encode(message).map_err(|e| Error::Decode(e.to_string()))?;
    write_frame(writer, &bytes)
}

/// Reads and decodes a message.
pub fn receive<T: DeserializeOwned>(reader: &mut impl Read, max: usize) -> Result<T> {
    let bytes = read_frame(reader, max)?;
    postcard::from_bytes(&bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// A socket read that must be done by a deadline: each read waits at most for the time
/// left, so a peer trickling one byte at a time cannot hold the reader past it.
pub struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> DeadlineReader<'a> {
    /// Reads `stream` until `within` from now.
    pub fn new(stream: &'a TcpStream, within: Duration) -> Self {
        DeadlineReader {
            stream,
            deadline: Instant::now() + within,
        }
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer did not send a whole message in time",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        match stream.read(buf) {
            // The socket's own timeout (Linux reports it as WouldBlock): the deadline.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer did not send a whole message in time",
                ))
            }
            other => other,
        }
    }
}

/// Reads and decodes a message from `stream`, all of it within `within`.
pub fn receive_within<T: DeserializeOwned>(
    stream: &TcpStream,
    max: usize,
    within: Duration,
) -> Result<T> {
    receive(&mut DeadlineReader::new(stream, within), max)
}

/// Reads and throws away `bytes` from `stream` for at most `within` (a frame that will not
/// be read); whether all of them came, so that the next frame starts where it should.
pub fn discard(stream: &TcpStream, bytes: u64, within: Duration) -> bool {
    std::io::copy(
        &mut DeadlineReader::new(stream, within).take(bytes),
        &mut std::io::sink(),
    )
    .is_ok_and(|copied| copied == bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ClientMessage;
    use proptest::prelude::*;

    #[test]
    fn a_huge_announcement_is_refused_before_allocating() {
        let mut bytes = (u32::MAX).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let error = read_frame(&mut bytes.as_slice(), DEFAULT_MAX_FRAME).unwrap_err();
        assert!(
            matches!(error, Error::FrameTooLarge { announced, .. } if announced == u32::MAX as u64)
        );
    }

    #[test]
    fn a_peer_trickling_bytes_is_cut_off_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let trickler = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            // A header announcing 64 bytes, then one byte every 100 ms.
            let _ = stream.write_all(&64u32.to_le_bytes());
            for _ in 0..30 {
                if stream.write_all(&[0]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let started = Instant::now();
        let error = receive_within::<ClientMessage>(&stream, 1024, Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            error.contains("in time") || error.contains("timed out"),
            "{error}"
        );
        drop(stream);
        trickler.join().unwrap();
    }

    #[test]
    fn frames_round_trip() {
        let mut buffer = Vec::new();
        send(&mut buffer, &ClientMessage::Bye).unwrap();
        let message: ClientMessage = receive(&mut buffer.as_slice(), 1024).unwrap();
        assert_eq!(message, ClientMessage::Bye);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random bytes and mutated valid frames never panic the decoder; every outcome is
        /// a message or an error.
        #[test]
        fn random_and_mutated_frames_never_panic(
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<usize>(),
            value in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let _ = receive::<ClientMessage>(&mut noise.as_slice(), 1 << 16);
            let _ = receive::<crate::protocol::AgentMessage>(&mut noise.as_slice(), 1 << 16);
            let mut valid = Vec::new();
            send(&mut valid, &ClientMessage::Profile {
                job: 3,
                model: vec![7; 20],
                protocol: crate::protocol::WireProtocol { warmup: 1, min_runs: 2, max_runs: 3, rel_ci: 0.1, max_seconds: 1.0, threads: 1 },
            }).unwrap();
            let at = flip % valid.len();
            valid[at] = value;
            valid.truncate(cut % (valid.len() + 1));
            let _ = receive::<ClientMessage>(&mut valid.as_slice(), 1 << 16);
        }
    }
}
