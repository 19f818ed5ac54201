//! An on-disk cache of measurements, keyed by (model content hash, target fingerprint,
//! protocol). Each entry is one file: a magic tag, the postcard-encoded entry, and a
//! BLAKE3 checksum of both; a damaged file is reported, ignored and re-measured, never
//! trusted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::profile::{Fingerprint, Measurement, Protocol};

const MAGIC: &[u8; 8] = b"HWNASLC1";

/// Environment variable overriding where hwnas keeps caches.
pub const CACHE_DIR_ENV: &str = "HWNAS_CACHE_DIR";

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    measurement: Measurement,
}

/// What a cache look-up found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A sound entry.
    Hit(Measurement),
    /// No entry.
    Miss,
    /// An entry that failed its checks; the text says why. It will be measured again.
    Damaged(String),
}

/// A folder of cached measurements.
#[derive(Debug, Clone)]
pub struct MeasurementCache {
    dir: PathBuf,
}

/// The cache in `dir`, or none where it cannot be used, with a warning saying why:
/// measuring goes on without it.
pub fn open_or_warn(dir: &Path, warn: &dyn Fn(&str)) -> Option<MeasurementCache> {
    match MeasurementCache::open(dir) {
        Ok(cache) => Some(cache),
        Err(e) => {
            warn(&format!(
                "the measurement cache at {} cannot be used ({e}); measuring without it",
                dir.display()
            ));
            None
        }
    }
}

/// The default cache folder: `HWNAS_CACHE_DIR/latency`, else `$XDG_CACHE_HOME/hwnas/latency`,
/// else `~/.cache/hwnas/latency`.
pub fn default_dir() -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env(CACHE_DIR_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("hwnas")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("hwnas")))
        .unwrap_or_else(|| std::env::temp_dir().join("hwnas-cache"))
        .join("latency")
}

impl MeasurementCache {
    /// A cache in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(MeasurementCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The cache key of a model measured on a target by a protocol.
    pub fn key(model: &[u8], fingerprint: &Fingerprint, protocol: &Protocol) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(blake3::hash(model).as_bytes());
        hasher.update(fingerprint.key().as_bytes());
        hasher.update(&postcard::to_allocvec(protocol).expect("a protocol serialises"));
        hasher.finalize().to_hex().to_string()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.bin"))
    }

    /// Looks a key up.
    pub fn get(&self, key: &str) -> Lookup {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Damaged(format!("{}: {e}", path.display())),
        };
        let damaged = |why: &str| Lookup::Damaged(format!("{}: {why}", path.display()));
        if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return damaged("not a measurement cache entry");
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != checksum {
            return damaged("checksum mismatch (the file was truncated or altered)");
        }
        match postcard::from_bytes::<Entry>(&body[MAGIC.len()..]) {
            Ok(entry) if entry.key == key => Lookup::Hit(entry.measurement),
            Ok(_) => damaged("the entry belongs to another key"),
            Err(e) => damaged(&format!("undecodable entry: {e}")),
        }
    }

    /// Stores a measurement (written to a temporary file, then renamed into place).
    pub fn put(&self, key: &str, measurement: &Measurement) -> Result<()> {
        let entry = Entry {
            key: key.to_string(),
            measurement: measurement.clone(),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(postcard::to_allocvec(&entry).map_err(|e| Error::Cache(e.to_string()))?);
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(checksum.as_bytes());
        let path = self.path(key);
        let partial = path.with_extension(format!("partial{}", std::process::id()));
        std::fs::write(&partial, &bytes).map_err(|source| Error::Io {
            path: partial.clone(),
            source,
        })?;
        std::fs::rename(&partial, &path).map_err(|source| Error::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Stats, stats};

    fn measurement() -> Measurement {
        let s: Stats = stats(&[1.0, 2.0, 3.0]);
        Measurement {
            stats: s,
            fingerprint: Fingerprint {
                ort_version: "1.31.1".into(),
                execution_provider: "CPUExecutionProvider".into(),
                cpu_model: "test".into(),
                cores: 2,
                threads: 1,
                governor: None,
                arch: "x86_64".into(),
            },
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MeasurementCache::open(dir.path()).unwrap();
        let m = measurement();
        let key = MeasurementCache::key(b"model", &m.fingerprint, &Protocol::default());
        assert_eq!(cache.get(&key), Lookup::Miss);
        cache.put(&key, &m).unwrap();
        assert_eq!(cache.get(&key), Lookup::Hit(m.clone()));

        let path = cache.path(&key);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.get(&key), Lookup::Damaged(why) if why.contains("checksum")));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(cache.get(&key), Lookup::Damaged(_)));
        cache.put(&key, &m).unwrap();
        assert_eq!(cache.get(&key), Lookup::Hit(m));
    }

    #[test]
    fn keys_change_with_model_target_and_protocol() {
        let m = measurement();
        let protocol = Protocol::default();
        let base = MeasurementCache::key(b"model", &m.fingerprint, &protocol);
        assert_ne!(
            base,
            MeasurementCache::key(b"model2", &m.fingerprint, &protocol)
        );
        let mut other = m.fingerprint.clone();
        other.threads = 2;
        assert_ne!(base, MeasurementCache::key(b"model", &other, &protocol));
        let more = Protocol {
            min_runs: 100,
            ..protocol
        };
        assert_ne!(base, MeasurementCache::key(b"model", &m.fingerprint, &more));
    }
}
