//! Checkpoints: everything a one-shot search needs to continue exactly where it stopped
//! (weights, batch-norm statistics, architecture parameters, both optimisers' state, the
//! step counter), written atomically as postcard with a version tag.

use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"hwnasck1";

/// Writes `state` to `path` through a temporary file and a rename, so a crash leaves the
/// previous checkpoint intact.
pub fn save<T: Serialize>(path: &Path, state: &T) -> Result<()> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(postcard::to_allocvec(state).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        problem: format!("cannot encode the checkpoint: {e}"),
    })?);
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a checkpoint written by [`save`].
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |problem: String| Error::Data {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(
            "not an hwnas checkpoint (or one from another version); start the search afresh".into(),
        ));
    }
    postcard::from_bytes(&bytes[MAGIC.len()..])
        .map_err(|e| bad(format!("damaged checkpoint ({e}); start the search afresh")))
}
