//! Finding the published data sets hwnas reads (never copies): flags first, then
//! environment variables, then `shared/data/` beside an ancestor of the current directory
//! or of the executable.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Opens a table file for reading, gunzipped on the fly when its name ends in `.gz`.
pub fn open_table(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    Ok(match path.extension().is_some_and(|e| e == "gz") {
        true => Box::new(flate2::read::GzDecoder::new(reader)),
        false => Box::new(reader),
    })
}

/// Environment variable naming the folder that holds the shared data sets.
pub const DATA_DIR_ENV: &str = "HWNAS_DATA_DIR";

/// The shared data folder: `HWNAS_DATA_DIR`, else the first `shared/data` folder found
/// beside an ancestor of the current directory or of the executable.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .map(|a| a.join("shared").join("data"))
            .find(|candidate| candidate.is_dir())
    })
}

/// A file inside the shared data folder, if it exists.
pub fn shared_file(relative: impl AsRef<Path>) -> Option<PathBuf> {
    shared_data_dir()
        .map(|dir| dir.join(relative.as_ref()))
        .filter(|path| path.exists())
}

/// The path given by `env` if set, else the shared data file `relative`.
pub fn locate(env: &str, relative: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| shared_file(relative))
}
