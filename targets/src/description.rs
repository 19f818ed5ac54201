//! Target descriptions in TOML: what device a search optimises latency for and how to reach
//! it. The built-in `host` is this machine.
//!
//! ```toml
//! name = "pi4"
//! kind = "agent"                     # local | agent | table
//! agents = ["10.0.0.21:7878", "10.0.0.22:7878"]
//! token_file = "pi4.token"           # relative to this file
//!
//! [ort]
//! execution_provider = "cpu"
//! threads = 4
//! optimization = "all"               # disable | basic | extended | all
//!
//! [protocol]
//! warmup = 10
//! min_runs = 50
//! max_runs = 1000
//! rel_ci = 0.01
//! max_seconds = 30.0
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::WireProtocol;

/// How a target is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// ONNX Runtime on this machine.
    Local,
    /// One or more `hwnas agent`s of the same device model.
    Agent,
    /// A published latency table (benchmark spaces only).
    Table,
}

/// ONNX Runtime settings on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrtSettings {
    /// Execution provider (`cpu`).
    pub execution_provider: String,
    /// Intra-op threads.
    pub threads: u32,
    /// Graph optimisation level: `disable`, `basic`, `extended` or `all`.
    pub optimization: String,
}

impl Default for OrtSettings {
    fn default() -> Self {
        OrtSettings {
            execution_provider: "cpu".into(),
            threads: 1,
            optimization: "all".into(),
        }
    }
}

/// The measurement protocol on the target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolSettings {
    /// Untimed runs first.
    pub warmup: u32,
    /// Timed runs at least.
    pub min_runs: u32,
    /// Timed runs at most.
    pub max_runs: u32,
    /// Stop once the median's 95% confidence half-width is under this share of it.
    pub rel_ci: f64,
    /// Stop after this many seconds (never before `min_runs`).
    pub max_seconds: f64,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            warmup: 10,
            min_runs: 50,
            max_runs: 1000,
            rel_ci: 0.01,
            max_seconds: 30.0,
        }
    }
}

/// The Slurm cluster whose nodes train a search's candidates for this target
/// (`--executor slurm`); each setting is the `sbatch` option of the same name, and the
/// `--slurm-*` flags override them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` per task.
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<usize>,
    /// `--gres` (`gpu:1`).
    pub gres: Option<String>,
    /// More `sbatch` options, each as given (`--account=lab`).
    pub options: Vec<String>,
}

/// A target device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The target's name.
    pub name: String,
    /// How it is reached.
    pub kind: TargetKind,
    /// Agent addresses (`host:port`), for `agent` targets.
    #[serde(default)]
    pub agents: Vec<String>,
    /// The shared token's file, for `agent` targets (relative paths are relative to the
    /// description's folder).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The table, for `table` targets: `nb201:<device>` or `ofa:note10`.
    #[serde(default)]
    pub table: Option<String>,
    /// ONNX Runtime settings.
    #[serde(default)]
    pub ort: OrtSettings,
    /// Measurement protocol.
    #[serde(default)]
    pub protocol: ProtocolSettings,
    /// Where `--executor slurm` submits (`[slurm]`).
    #[serde(default)]
    pub slurm: ClusterSettings,
    /// The file it was read from (`None` for built-ins).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key) && l.contains('='))
        .map_or(1, |i| i + 1)
}

impl Target {
    /// Where it measures, in a few words: this machine, its agents' addresses, or its table.
    pub fn whereabouts(&self) -> String {
        match self.kind {
            TargetKind::Local => "this machine (ONNX Runtime)".into(),
            TargetKind::Agent => self.agents.join(", "),
            TargetKind::Table => self.table.clone().unwrap_or_default(),
        }
    }

    /// The description as TOML, headed by a comment naming its file (or `built-in`).
    pub fn to_toml_text(&self) -> Result<String> {
        let origin = self
            .source
            .as_ref()
            .map_or("built-in".to_string(), |p| p.display().to_string());
        let body = toml::to_string(self).map_err(|e| Error::Target {
            file: PathBuf::from(&origin),
            problem: format!("cannot be printed as TOML: {e}"),
        })?;
        Ok(format!("# {origin}\n{body}"))
    }

    /// The built-in target: this machine.
    pub fn host() -> Self {
        Target {
            name: "host".into(),
            kind: TargetKind::Local,
            agents: Vec::new(),
            token_file: None,
            table: None,
            ort: OrtSettings::default(),
            protocol: ProtocolSettings::default(),
            slurm: ClusterSettings::default(),
            source: None,
        }
    }

    /// Reads and checks a description; errors name the file, the line and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading target {}", path.display()), e))?;
        let target = Self::parse(&text, path)?;
        // The token file is the one thing outside the description: it must be there too.
        if let Some(file) = &target.token_file
            && !file.is_file()
        {
            return Err(Error::Target {
                file: path.to_path_buf(),
                problem: format!(
                    "line {}, key `token_file`: {} does not exist; create it (any bytes, shared with the board's agent) or fix the path",
                    line_of(&text, "token_file"),
                    file.display()
                ),
            });
        }
        Ok(target)
    }

    /// Parses a description's text (`path` is used for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |problem: String| Error::Target {
            file: path.to_path_buf(),
            problem,
        };
        let mut target: Target = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().trim().to_string();
            bad(match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            })
        })?;
        let key_problem = |key: &str, problem: &str| {
            bad(format!(
                "line {}, key `{key}`: {problem}",
                line_of(text, key)
            ))
        };
        match target.kind {
            TargetKind::Agent => {
                if target.agents.is_empty() {
                    return Err(key_problem(
                        "agents",
                        "an agent target lists at least one `host:port` address",
                    ));
                }
                if let Some(bad_address) = target.agents.iter().find(|a| !is_host_port(a)) {
                    return Err(key_problem(
                        "agents",
                        &format!(
                            "`{bad_address}` is not a `host:port` address (a host name or IP, then a port 1 to 65535)"
                        ),
                    ));
                }
                if let Some(file) = &target.token_file
                    && file.is_relative()
                {
                    target.token_file = Some(path.parent().unwrap_or(Path::new(".")).join(file));
                }
            }
            TargetKind::Table if target.table.is_none() => {
                return Err(key_problem(
                    "kind",
                    "a table target needs `table = \"nb201:<device>\"` or `table = \"ofa:note10\"`",
                ));
            }
            _ => {}
        }
        if target.ort.threads == 0 || target.ort.threads > 1024 {
            return Err(key_problem("threads", "must be 1 to 1024"));
        }
        if !["disable", "basic", "extended", "all"].contains(&target.ort.optimization.as_str()) {
            return Err(key_problem(
                "optimization",
                "allowed: disable, basic, extended, all",
            ));
        }
        let p = target.protocol;
        if p.min_runs == 0 || p.max_runs < p.min_runs {
            return Err(key_problem("min_runs", "needs 1 <= min_runs <= max_runs"));
        }
        if p.max_runs > 100_000 {
            return Err(key_problem("max_runs", "at most 100000 timed runs"));
        }
        if !(p.rel_ci.is_finite() && p.rel_ci > 0.0) {
            return Err(key_problem("rel_ci", "must be a positive number"));
        }
        if !(p.max_seconds.is_finite() && p.max_seconds > 0.0) {
            return Err(key_problem(
                "max_seconds",
                "must be a positive number of seconds",
            ));
        }
        target.source = Some(path.to_path_buf());
        Ok(target)
    }

    /// The protocol to send to an agent.
    pub fn wire_protocol(&self) -> WireProtocol {
        let p = self.protocol;
        WireProtocol {
            warmup: p.warmup,
            min_runs: p.min_runs,
            max_runs: p.max_runs,
            rel_ci: p.rel_ci,
            max_seconds: p.max_seconds,
            threads: self.ort.threads,
        }
    }

    /// The token, read from `token_file` (trailing whitespace removed); empty for none.
    pub fn token(&self) -> Result<Vec<u8>> {
        match &self.token_file {
            None => Ok(Vec::new()),
            Some(file) => read_token(file),
        }
    }
}

/// Whether `address` is `host:port` with a non-empty host and a port of 1 to 65535
/// (`[::1]:7000` for IPv6).
fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

/// Reads a token file, trimming trailing whitespace; an empty token is an error.
pub fn read_token(file: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::io(format!("reading token file {}", file.display()), e))?;
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    if end == 0 {
        return Err(Error::Auth(format!(
            "token file {} is empty",
            file.display()
        )));
    }
    Ok(bytes[..end].to_vec())
}

/// The folder of user target files: `HWNAS_TARGETS_DIR`, else `~/.config/hwnas/targets`.
pub fn targets_dir() -> PathBuf {
    let env = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("HWNAS_TARGETS_DIR")
        .or_else(|| env("XDG_CONFIG_HOME").map(|d| d.join("hwnas").join("targets")))
        .or_else(|| env("HOME").map(|d| d.join(".config").join("hwnas").join("targets")))
        .unwrap_or_else(|| PathBuf::from("targets.d"))
}

/// The built-in `host` and every `*.toml` in [`targets_dir`] (each loaded or its error).
pub fn list() -> Vec<Result<Target>> {
    let mut out = vec![Ok(Target::host())];
    if let Ok(entries) = std::fs::read_dir(targets_dir()) {
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| Target::load(p)));
    }
    out
}

/// `hwnas targets list`'s text: the folder, then a line per target (or its error); and
/// whether any target failed to load.
pub fn listing() -> (String, bool) {
    let mut text = format!("targets folder: {}", targets_dir().display());
    let mut failed = false;
    for target in list() {
        text.push_str(&match target {
            Ok(t) => format!(
                "\n  {:<16} {:<6} {}",
                t.name,
                format!("{:?}", t.kind).to_lowercase(),
                t.whereabouts()
            ),
            Err(e) => {
                failed = true;
                format!("\n  (error) {e}")
            }
        });
    }
    (text, failed)
}

/// A target by name (`host`, a name in [`targets_dir`]) or by file path.
pub fn find(name_or_file: &str) -> Result<Target> {
    if name_or_file == "host" {
        return Ok(Target::host());
    }
    let path = Path::new(name_or_file);
    if path.is_file() {
        return Target::load(path);
    }
    let in_dir = targets_dir().join(format!("{name_or_file}.toml"));
    if in_dir.is_file() {
        return Target::load(&in_dir);
    }
    Err(Error::Target {
        file: path.to_path_buf(),
        problem: format!(
            "no such target: give a TOML file, `host`, or a name from {}",
            targets_dir().display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target> {
        Target::parse(text, Path::new("/tmp/t/pi.toml"))
    }

    #[test]
    fn a_full_description_parses() {
        let t = parse("name = \"pi4\"\nkind = \"agent\"\nagents = [\"127.0.0.1:7000\"]\ntoken_file = \"pi.token\"\n[ort]\nthreads = 4\n[protocol]\nmin_runs = 60\n").unwrap();
        assert_eq!(t.kind, TargetKind::Agent);
        assert_eq!(t.ort.threads, 4);
        assert_eq!(t.protocol.min_runs, 60);
        assert_eq!(t.token_file.unwrap(), Path::new("/tmp/t/pi.token"));
    }

    #[test]
    fn addresses_ports_and_token_files_are_checked_where_they_are_read() {
        for address in ["not an address", "host:99999", ":7000", "pi:0", "pi"] {
            let error = parse(&format!(
                "name = \"pi4\"\nkind = \"agent\"\nagents = [\"{address}\"]\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("host:port") && error.contains(address),
                "{error}"
            );
        }
        parse("name = \"pi4\"\nkind = \"agent\"\nagents = [\"[::1]:7000\", \"pi.local:7878\"]\n")
            .unwrap();
        let dir = std::env::temp_dir().join(format!("hwnas-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pi.toml");
        std::fs::write(&file, "name = \"pi4\"\nkind = \"agent\"\nagents = [\"pi:7000\"]\ntoken_file = \"missing.token\"\n").unwrap();
        let error = Target::load(&file).unwrap_err().to_string();
        assert!(
            error.contains("missing.token") && error.contains("does not exist"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let error =
            parse("name = \"pi4\"\nkind = \"agent\"\nagents = [\"a:1\"]\n[ort]\nthreadz = 4\n")
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("pi.toml") && error.contains("line 5") && error.contains("threadz"),
            "{error}"
        );
        let error = parse("name = \"pi4\"\nkind = \"agent\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`agents`"), "{error}");
        let error = parse("name = \"x\"\nkind = \"phone\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && error.contains("phone"),
            "{error}"
        );
        let error = parse("name = \"x\"\nkind = \"local\"\n[ort]\noptimization = \"max\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 4") && error.contains("optimization"),
            "{error}"
        );
    }
}
