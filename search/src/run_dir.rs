//! The run directory: `manifest.json` (a versioned schema of its own), the history and the
//! trace as JSON lines written as they happen, and resume from what an earlier run left.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use hwnas_core::Record;
use hwnas_latency::profile::Fingerprint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::SearchPlan;

/// The manifest schema this version writes. Schema 0 is the unversioned manifest of
/// earlier versions (its plan under `settings`), which still resumes.
pub const MANIFEST_SCHEMA: u32 = 1;

/// `manifest.json`: what ran, with which settings, against what. Written first with the
/// plan alone (so a run stopped before its world was built still resumes), then again with
/// the world's facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The schema version ([`MANIFEST_SCHEMA`]).
    #[serde(default)]
    pub schema: u32,
    /// The command line.
    pub command: Vec<String>,
    /// hwnas's version.
    pub hwnas_version: String,
    /// The plan (the settings a resumed run continues with).
    #[serde(alias = "settings")]
    pub plan: SearchPlan,
    /// The seed.
    pub seed: u64,
    /// The space's name.
    pub space: String,
    /// The strategy's name.
    pub strategy: String,
    /// The target as given.
    pub target: String,
    /// What the world turned out to be, once it was built.
    #[serde(flatten)]
    pub world: Option<WorldFacts>,
}

/// The facts of a run's world the manifest records (and a resumed run keeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldFacts {
    /// The evaluator's name.
    pub evaluator: String,
    /// The latency model the search used.
    pub latency_model: String,
    /// The budget.
    pub latency_budget_ms: f64,
    /// Where the budget came from.
    pub budget_origin: String,
    /// Where measurements were taken.
    pub target_fingerprint: Option<Fingerprint>,
    /// ONNX Runtime's version, when it was loaded.
    pub onnxruntime: Option<String>,
    /// The budget's reference network and its latency (absent in older manifests).
    #[serde(default)]
    pub budget_reference: Option<(String, f64)>,
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// A new run in `path` (created); refused when it already holds a run that started
    /// evaluating or training (a history, a trace, a checkpoint). A run that never got that
    /// far (its world, data or kernels could not be had: a missing table, say) is replaced.
    pub fn create(path: &Path) -> Result<RunDir> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        let started = ["history.jsonl", "checkpoint.bin", "trace.jsonl"]
            .iter()
            .any(|f| dir.file(f).exists());
        if started {
            return Err(Error::RunDir {
                dir: dir.path.clone(),
                problem: format!(
                    "already holds a run; continue it with `--resume {}` or give another --out",
                    path.display()
                ),
            });
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io("create", path, e))?;
        Ok(dir)
    }

    /// The run in `path` and its manifest, to continue it.
    pub fn open(path: &Path) -> Result<(RunDir, Manifest)> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        let manifest_path = dir.file("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(|_| Error::RunDir {
            dir: dir.path.clone(),
            problem: "no manifest.json there; give the run directory of an earlier `hwnas search`"
                .into(),
        })?;
        // The schema first: a newer manifest is named as such, not as damaged.
        #[derive(Deserialize)]
        struct Schema {
            #[serde(default)]
            schema: u32,
            hwnas_version: Option<String>,
        }
        if let Ok(version) = serde_json::from_str::<Schema>(&text)
            && version.schema > MANIFEST_SCHEMA
        {
            return Err(Error::RunDir {
                dir: dir.path.clone(),
                problem: format!(
                    "its manifest has schema {}, newer than this hwnas reads ({MANIFEST_SCHEMA}); continue it with the hwnas that wrote it ({})",
                    version.schema,
                    version
                        .hwnas_version
                        .as_deref()
                        .unwrap_or("a later version")
                ),
            });
        }
        let json_error = |source| Error::Json {
            path: manifest_path.clone(),
            what: "an hwnas manifest",
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json_error)?;
        // A flattened optional part reads as absent when damaged: where its budget is
        // there, the world's facts must read whole.
        if value.get("latency_budget_ms").is_some() {
            serde_json::from_value::<WorldFacts>(value.clone()).map_err(json_error)?;
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(json_error)?;
        Ok((dir, manifest))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes the manifest (whole, then renamed over the old one).
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        write_json(&self.file("manifest.json"), manifest)
    }

    /// The records of `history.jsonl` (none when absent). See [`read_jsonl`].
    pub fn read_history(&self) -> Result<Vec<Record>> {
        read_jsonl(&self.file("history.jsonl"), "a search history")
    }

    /// Appends JSON lines to `name`.
    pub fn appender(&self, name: &str) -> Result<JsonLines> {
        JsonLines::append(&self.file(name))
    }
}

/// Reads a whole JSON file of `T`; errors name the file and what it should hold.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// Writes `value` as pretty JSON, whole, then renamed into place.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        what: "serialisable",
        source,
    })?;
    write_atomically(path, text.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file (of this process) renamed over it, so
/// a reader never sees half a file, even where two processes write it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))
}

/// Reads a JSON-lines file of `T` (none when absent). A last line cut short by a kill (no
/// newline at its end, and not a whole record) is cut off the file, so that appending
/// continues on a line of its own; a damaged line anywhere else is an error naming it.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Vec<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut complete_bytes = 0u64;
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| Error::io("read", path, e))?;
        if read == 0 {
            break;
        }
        number += 1;
        let whole = line.ends_with('\n');
        let text = line.trim();
        let parsed = if text.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<T>(text))
        };
        match parsed {
            Some(Ok(record)) if whole => records.push(record),
            // A whole record the kill left without its newline: keep it, end the line.
            Some(Ok(record)) => {
                records.push(record);
                let mut file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::io("write", path, e))?;
                file.write_all(b"\n")
                    .map_err(|e| Error::io("write", path, e))?;
                return Ok(records);
            }
            None if whole => {}
            Some(Err(_)) | None if !whole => {
                eprintln!(
                    "note: {} line {number} is incomplete (the run was stopped while writing it); it is removed and will be done again",
                    path.display()
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io("write", path, e))?;
                file.set_len(complete_bytes)
                    .map_err(|e| Error::io("write", path, e))?;
                return Ok(records);
            }
            Some(Err(source)) => {
                return Err(Error::Json {
                    path: path.to_path_buf(),
                    what,
                    source,
                })
                .map_err(|e| Error::Step {
                    what: format!(
                        "{} line {number} is damaged (a whole line, not one cut short by a stop); repair or remove the line, or start a new run",
                        path.display()
                    ),
                    source: Box::new(e),
                });
            }
            _ => unreachable!("every combination is matched above"),
        }
        complete_bytes += read as u64;
    }
    Ok(records)
}

/// A JSON-lines file appended to, each line flushed as it is written.
pub struct JsonLines {
    path: PathBuf,
    file: BufWriter<File>,
}

impl JsonLines {
    /// Opens `path` for appending (created when absent).
    pub fn append(path: &Path) -> Result<JsonLines> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("write", path, e))?;
        Ok(JsonLines {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
        })
    }

    /// Appends one value as a line and flushes it.
    pub fn push<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let mut line = serde_json::to_string(value).map_err(|source| Error::Json {
            path: self.path.clone(),
            what: "serialisable",
            source,
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Line {
        n: u32,
        x: f64,
    }

    fn read(path: &Path) -> Vec<u32> {
        read_jsonl::<Line>(path, "lines")
            .unwrap()
            .iter()
            .map(|l| l.n)
            .collect()
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_appending_continues_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(
            &path,
            "{\"n\":1,\"x\":1.0}\n{\"n\":2,\"x\":2.0}\n{\"n\":3,\"x\"",
        )
        .unwrap();
        assert_eq!(read(&path), vec![1, 2]);
        let mut lines = JsonLines::append(&path).unwrap();
        lines.push(&Line { n: 3, x: 3.0 }).unwrap();
        drop(lines);
        assert_eq!(read(&path), vec![1, 2, 3]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_whole_last_record_without_its_newline_is_kept_and_its_line_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(&path, "{\"n\":1,\"x\":1.0}\n{\"n\":2,\"x\":2.0}").unwrap();
        assert_eq!(read(&path), vec![1, 2]);
        let mut lines = JsonLines::append(&path).unwrap();
        lines.push(&Line { n: 3, x: 3.0 }).unwrap();
        drop(lines);
        assert_eq!(read(&path), vec![1, 2, 3]);
    }

    #[test]
    fn a_damaged_line_before_the_last_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(&path, "{\"n\":1,\"x\":1.0}\ngarbage\n{\"n\":3,\"x\":3.0}\n").unwrap();
        let error = read_jsonl::<Line>(&path, "lines").unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn an_existing_run_is_refused_and_a_missing_manifest_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(&dir.path().join("run")).unwrap();
        // A manifest alone (nothing evaluated yet) does not hold the directory.
        std::fs::write(run.file("manifest.json"), "{}").unwrap();
        RunDir::create(run.path()).unwrap();
        std::fs::write(run.file("history.jsonl"), "").unwrap();
        let error = RunDir::create(run.path()).unwrap_err().to_string();
        assert!(error.contains("--resume"), "{error}");
        let error = RunDir::open(&dir.path().join("nothing"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("manifest.json"), "{error}");
    }
}
