//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! hwnas links ONNX Runtime dynamically (`ort`'s `load-dynamic`), so nothing is downloaded
//! at build time. The library is looked for, in order: `ORT_DYLIB_PATH`; the project cache
//! that `scripts/setup.sh` fills (`.cache/onnxruntime-<version>/libonnxruntime.so`, found
//! beside the executable's ancestors, the current directory's ancestors, or
//! `HWNAS_CACHE_DIR`); an installed `onnxruntime` Python package.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The ONNX Runtime version hwnas is built and tested against.
pub const PINNED_ORT_VERSION: &str = "1.31.1";

/// The one command that installs the pinned ONNX Runtime into the project cache.
pub const SETUP_COMMAND: &str = "bash scripts/setup.sh";

/// The shared library's file name on this platform.
const LIBRARY_FILE: &str = if cfg!(target_os = "windows") {
    "onnxruntime.dll"
} else if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else {
    "libonnxruntime.so"
};

/// A loaded ONNX Runtime: where it came from and what it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrtRuntime {
    /// The version the library reports, e.g. `1.31.1`.
    pub version: String,
    /// The library file that was loaded.
    pub path: PathBuf,
    /// Where the path came from: `ORT_DYLIB_PATH`, `project cache` or `python package`.
    pub origin: String,
    /// Execution providers compiled into the library, e.g. `CPUExecutionProvider`.
    pub providers: Vec<String>,
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl OrtRuntime {
    /// Finds and loads ONNX Runtime once per process; later calls return the same runtime.
    ///
    /// Every failure is an [`Error`] naming the file and the command that fixes it; nothing
    /// here panics on a missing or wrong library.
    pub fn load() -> Result<&'static OrtRuntime> {
        if let Some(runtime) = RUNTIME.get() {
            return Ok(runtime);
        }
        let _guard = LOADING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(runtime) = RUNTIME.get() {
            return Ok(runtime);
        }
        let (path, origin) = locate()?;
        let runtime = load_from(&path, &origin)?;
        Ok(RUNTIME.get_or_init(|| runtime))
    }
}

/// The process-wide ONNX Runtime environment sessions are created in (loading the
/// runtime first if needed).
pub fn environment() -> Result<&'static ort::environment::Environment> {
    OrtRuntime::load()?;
    ENVIRONMENT
        .get()
        .ok_or_else(|| Error::Ort("the ONNX Runtime environment was not created".to_string()))
}

fn load_error(path: &Path, origin: &str, reason: impl ToString) -> Error {
    Error::OrtLoad {
        path: path.to_path_buf(),
        origin: origin.to_string(),
        reason: reason.to_string(),
        pinned: PINNED_ORT_VERSION,
        fix: SETUP_COMMAND,
    }
}

fn load_from(path: &Path, origin: &str) -> Result<OrtRuntime> {
    if !path.is_file() {
        return Err(load_error(path, origin, "no such file"));
    }
    let version = ffi::library_version(path).map_err(|reason| load_error(path, origin, reason))?;
    if !same_minor(&version, PINNED_ORT_VERSION) {
        return Err(Error::OrtVersion {
            path: path.to_path_buf(),
            found: version,
            pinned: PINNED_ORT_VERSION,
            fix: SETUP_COMMAND,
        });
    }
    match ort::init_from(path) {
        Ok(builder) => {
            let environment = builder
                .with_name("hwnas")
                .build()
                .map_err(|e| load_error(path, origin, format!("creating the environment: {e}")))?;
            let _ = ENVIRONMENT.set(environment);
        }
        Err(ort::LoadDynamicError::BadVersion { version_str, path }) => {
            return Err(Error::OrtVersion {
                path,
                found: version_str,
                pinned: PINNED_ORT_VERSION,
                fix: SETUP_COMMAND,
            });
        }
        Err(other) => return Err(load_error(path, origin, other)),
    }
    Ok(OrtRuntime {
        version,
        path: path.to_path_buf(),
        origin: origin.to_string(),
        providers: ffi::available_providers().map_err(Error::Ort)?,
    })
}

/// True when two `major.minor.patch` versions share major and minor.
fn same_minor(a: &str, b: &str) -> bool {
    a.split('.').take(2).eq(b.split('.').take(2))
}

/// Where to look, in order; the first existing file wins.
fn locate() -> Result<(PathBuf, String)> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(path), "ORT_DYLIB_PATH".to_string()));
    }
    let mut looked = Vec::new();
    for dir in cache_dirs() {
        let candidate = dir
            .join(format!("onnxruntime-{PINNED_ORT_VERSION}"))
            .join(LIBRARY_FILE);
        if candidate.is_file() {
            return Ok((candidate, "project cache".to_string()));
        }
        if !looked.contains(&candidate) {
            looked.push(candidate);
        }
    }
    match python_package_library() {
        Some(path) => return Ok((path, "python package".to_string())),
        None => looked.push(PathBuf::from("python3: import onnxruntime")),
    }
    Err(Error::OrtNotFound {
        looked,
        pinned: PINNED_ORT_VERSION,
        fix: SETUP_COMMAND,
    })
}

/// Candidate `.cache` folders: `HWNAS_CACHE_DIR`, then `.cache` in the ancestors of the
/// executable and of the current directory.
fn cache_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("HWNAS_CACHE_DIR").filter(|p| !p.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    for start in starts.into_iter().flatten() {
        for ancestor in start.ancestors() {
            let dir = ancestor.join(".cache");
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// `libonnxruntime.so*` inside an installed `onnxruntime` Python package, if any.
fn python_package_library() -> Option<PathBuf> {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let package = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let mut libraries: Vec<PathBuf> = std::fs::read_dir(package.join("capi"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(LIBRARY_FILE))
        })
        .collect();
    libraries.sort();
    libraries.into_iter().next()
}

#[allow(unsafe_code)]
mod ffi {
    //! The one ONNX Runtime call `ort` does not wrap publicly: the list of execution
    //! providers compiled into the loaded library.

    use std::ffi::{CStr, c_char, c_int};
    use std::path::Path;

    fn with_sources(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The version string a library file reports through `OrtGetApiBase`, read before `ort`
    /// is given the file, so a wrong file or version is an error instead of a panic.
    pub(super) fn library_version(path: &Path) -> Result<String, String> {
        // SAFETY: loading a shared library runs its initialisers; the file is the one the
        // user or the setup pointed at as ONNX Runtime, which is what will be loaded anyway.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| with_sources(&e))?;
        // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
        let get_api_base = unsafe {
            library.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase")
        }
        .map_err(|_| {
            "the file does not export `OrtGetApiBase`: it is not ONNX Runtime".to_string()
        })?;
        // SAFETY: calling the exported getter; it returns a static struct or null.
        let base = unsafe { get_api_base() };
        if base.is_null() {
            return Err("`OrtGetApiBase` returned null".to_string());
        }
        // SAFETY: `base` is non-null and points at the library's static `OrtApiBase`, whose
        // `GetVersionString` returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(((*base).GetVersionString)()) };
        Ok(version.to_string_lossy().into_owned())
    }

    /// Names of the execution providers the loaded library supports.
    pub(super) fn available_providers() -> Result<Vec<String>, String> {
        let api = ort::api();
        let mut names: *mut *mut c_char = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: the library is loaded (the caller checked), and the out-pointers are valid.
        let status = unsafe { (api.GetAvailableProviders)(&mut names, &mut count) };
        if !status.0.is_null() {
            // SAFETY: a non-null status is owned by us and released exactly once.
            unsafe { (api.ReleaseStatus)(status.0) };
            return Err("GetAvailableProviders failed".to_string());
        }
        let mut providers = Vec::with_capacity(count.max(0) as usize);
        for i in 0..count.max(0) as usize {
            // SAFETY: ONNX Runtime returned `count` valid NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(*names.add(i)) };
            providers.push(name.to_string_lossy().into_owned());
        }
        // SAFETY: the array came from GetAvailableProviders with this count.
        let status = unsafe { (api.ReleaseAvailableProviders)(names, count) };
        if !status.0.is_null() {
            // SAFETY: as above.
            unsafe { (api.ReleaseStatus)(status.0) };
        }
        Ok(providers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_compare_on_major_and_minor() {
        assert!(same_minor("1.31.0", "1.31.1"));
        assert!(!same_minor("1.30.1", "1.31.1"));
    }
}
