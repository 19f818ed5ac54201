//! Training-free proxies on NAS-Bench-201 cells, judged by rank correlation with the
//! table's test accuracy (and, given NASLib's published scores for the same cells, against
//! those), their rank aggregate, and a timed zero-cost search of the whole space.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hwnas_core::Arch;
use hwnas_core::benchmark::Nb201Table;
use hwnas_core::images::ImageSet;
use hwnas_core::kernels::Tensor;
use hwnas_core::proxies::{
    Nb201Net, PeriodicSynflow, SYNFLOW_NET, grad_norm_and_snip, jacob_cov, kendall_tau, naswot,
    spearman, synflow,
};
use hwnas_core::space::{Nb201Space, SearchSpace};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::observer::Observer;

/// The proxies computed, in report order.
/// `synflow_periodic` is synflow of the same network with periodic padding, in closed form
/// (what the whole-space search ranks by); NASLib's synflow is its published counterpart.
pub const PROXIES: [&str; 7] = [
    "synflow",
    "naswot",
    "grad_norm",
    "snip",
    "params",
    "jacov",
    "synflow_periodic",
];

/// The proxies `combined` aggregates (mean rank): the three the zero-cost literature finds
/// complementary on NAS-Bench-201 (NASLib: synflow, NASWOT, jacob_cov) — what each sees
/// differs: path strength without data, activation patterns, input-Jacobian correlation.
/// Chosen before measuring; `combined_all` aggregates every proxy (synflow once), for
/// comparison.
pub const COMBINED: [&str; 3] = ["synflow", "naswot", "jacov"];

/// What to score.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// The space: only nb201, where a table judges the proxies.
    pub space: String,
    /// Cells sampled from the table (ignored with `compare`: its cells are scored).
    pub samples: usize,
    /// The NAS-Bench-201 table; `None` for `$HWNAS_NB201_TABLE` or the shared data.
    pub table: Option<PathBuf>,
    /// The table's data set columns.
    pub dataset: String,
    /// Images per batch for NASWOT, grad-norm and snip.
    pub batch: usize,
    /// Fashion-MNIST's folder; `None` for Debian's package or the shared data.
    pub data: Option<PathBuf>,
    /// Also score every cell with synflow (periodic padding, closed form), timed.
    pub whole_space: bool,
    /// NASLib's published zero-cost scores (CSV, optionally gzipped): score its cells and
    /// compare.
    pub compare: Option<PathBuf>,
    /// Seeds the sample.
    pub seed: u64,
}

/// One proxy's rank correlations.
#[derive(Debug, Clone, Serialize)]
pub struct Correlation {
    /// Spearman's rho with the table's test accuracy.
    pub spearman_test: f64,
    /// Kendall's tau with the table's test accuracy.
    pub kendall_test: f64,
    /// Spearman's rho with NASLib's score of the same proxy on the same cells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spearman_with_naslib: Option<f64>,
    /// NASLib's score's Spearman's rho with the table's test accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub naslib_spearman_test: Option<f64>,
}

/// The zero-cost search of every cell.
#[derive(Debug, Serialize)]
pub struct WholeSpace {
    /// The proxy it ranks by.
    pub proxy: String,
    /// The cell the proxy ranks first.
    pub arch: String,
    /// Its test accuracy.
    pub test_accuracy: f64,
    /// Seconds it took.
    pub seconds: f64,
    /// Cells scored.
    pub cells: usize,
    /// The table's best test accuracy.
    pub table_optimum: f64,
    /// Spearman's rho of the proxy with test accuracy over every cell it scored (cells no
    /// path crosses included, at the lowest score).
    pub spearman_test: f64,
}

/// What `hwnas proxies` reports.
#[derive(Debug, Serialize)]
pub struct ProxyReport {
    /// Cells scored.
    pub samples: usize,
    /// Per proxy (and `combined`, their rank aggregate).
    pub proxies: BTreeMap<String, Correlation>,
    /// Spearman's rho between synflow with periodic padding (closed form) and the
    /// reference's zero-padded synflow on the same cells (none without sampled cells).
    pub periodic_vs_zero_padded: Option<f64>,
    /// Seconds the cells took.
    pub seconds: f64,
    /// The table's data set.
    pub dataset: String,
    /// The images the data-dependent proxies saw.
    pub data: String,
    /// The whole-space search, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_space: Option<WholeSpace>,
}

/// NASLib's column for each of our proxies.
fn naslib_column(proxy: &str) -> Option<&'static str> {
    match proxy {
        "synflow" | "synflow_periodic" => Some("synflow"),
        "naswot" => Some("nwot"),
        "grad_norm" => Some("grad_norm"),
        "snip" => Some("snip"),
        "params" => Some("params"),
        "jacov" => Some("jacov"),
        _ => None,
    }
}

/// The cells of NASLib's file and their published scores per proxy.
fn read_naslib(path: &Path, dataset: &str) -> Result<Vec<(Arch, BTreeMap<String, f64>)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let mut text = String::new();
    let mut reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes.as_slice()))
    } else {
        Box::new(bytes.as_slice())
    };
    reader
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    let bad = |problem: String| Error::plan("compare", path.display(), problem);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let arch_col = column("arch_str").ok_or_else(|| bad("no `arch_str` column".into()))?;
    let dataset_col = column("dataset");
    let space = Nb201Space::new();
    let mut cells = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("line {}: {e}", line + 2)))?;
        if dataset_col.is_some_and(|c| record.get(c) != Some(dataset)) {
            continue;
        }
        let arch = space
            .parse(record.get(arch_col).unwrap_or(""))
            .map_err(|e| bad(format!("line {}: {e}", line + 2)))?;
        let mut scores = BTreeMap::new();
        for proxy in PROXIES {
            if let Some(value) = naslib_column(proxy)
                .and_then(column)
                .and_then(|c| record.get(c))
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            {
                scores.insert(proxy.to_string(), value);
            }
        }
        cells.push((arch, scores));
    }
    if cells.is_empty() {
        return Err(bad(format!("no cells of the {dataset} data set")));
    }
    Ok(cells)
}

/// One batch of `n` Fashion-MNIST images as NAS-Bench-201's network takes them (padded to
/// 32x32, 3 channels), normalised per channel to zero mean and unit variance, as the
/// reference normalises its batch.
fn reference_batch(set: &ImageSet, n: usize) -> Result<(Tensor, Vec<usize>)> {
    let (mut pixels, labels) = set.batch_rgb(0, n, 32);
    let plane = 32 * 32;
    for c in 0..3 {
        let values = || (0..n).flat_map(move |b| (0..plane).map(move |p| (b * 3 + c) * plane + p));
        let count = (n * plane) as f32;
        let mean = values().map(|i| pixels[i]).sum::<f32>() / count;
        let var = values().map(|i| (pixels[i] - mean).powi(2)).sum::<f32>() / count;
        let std = var.sqrt().max(1e-6);
        for i in values() {
            pixels[i] = (pixels[i] - mean) / std;
        }
    }
    let tensor = Tensor::new(&[n, 3, 32, 32], pixels).map_err(hwnas_core::Error::from)?;
    Ok((tensor, labels))
}

/// Scalar weights of the cell's network: the proxy NASLib calls `params`.
fn parameter_count(net: &Nb201Net, arch: &Arch) -> f64 {
    let backend = hwnas_core::kernels::Cpu;
    let mut tape = hwnas_core::kernels::Tape::new(&backend);
    let mut params = hwnas_core::proxies::ParamSource::new(0, false);
    let x = tape.leaf(Tensor::zeros(&[1, 3, 32, 32]), false);
    net.forward(&mut tape, &mut params, arch, x);
    params.created.iter().map(|(_, t)| t.len() as f64).sum()
}

/// Average ranks of each cell over the proxies given, for the rank aggregate (`NaN` scores,
/// a proxy that could not be computed, are left out of that cell's average).
fn rank_aggregate(columns: &[Vec<f64>]) -> Vec<f64> {
    let n = columns.first().map_or(0, Vec::len);
    let mut total = vec![0.0; n];
    let mut count = vec![0.0; n];
    for column in columns {
        let mut order: Vec<usize> = (0..n).filter(|&i| !column[i].is_nan()).collect();
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]));
        let m = order.len().max(1) as f64;
        for (rank, &i) in order.iter().enumerate() {
            total[i] += rank as f64 / m;
            count[i] += 1.0;
        }
    }
    total
        .iter()
        .zip(&count)
        .map(|(t, c)| if *c > 0.0 { t / c } else { f64::NAN })
        .collect()
}

/// Scores the plan's cells with every proxy.
pub fn score(plan: &ProxyPlan, observer: &dyn Observer) -> Result<ProxyReport> {
    if plan.space != "nb201" {
        return Err(Error::plan(
            "space",
            &plan.space,
            "proxies are computed on NAS-Bench-201 cells (nb201), where a table judges them",
        ));
    }
    // With `compare`, NASLib's cells are scored and `samples` plays no part.
    let search_alone = plan.samples == 0 && plan.whole_space && plan.compare.is_none();
    if plan.samples < 3 && !search_alone && plan.compare.is_none() {
        return Err(Error::plan(
            "samples",
            plan.samples,
            "at least 3 cells to rank (or 0 beside --whole-space, for the whole-space search alone)",
        ));
    }
    if plan.batch < 2 || plan.batch > 1024 {
        return Err(Error::plan("batch", plan.batch, "2 to 1024 images"));
    }
    let table = Nb201Table::load(&Nb201Table::locate(plan.table.as_deref())?, &plan.dataset)?;
    if search_alone {
        return Ok(ProxyReport {
            samples: 0,
            proxies: BTreeMap::new(),
            periodic_vs_zero_padded: None,
            seconds: 0.0,
            dataset: plan.dataset.clone(),
            data: "none (the whole-space search needs no images)".into(),
            whole_space: Some(whole_space(&table, observer)),
        });
    }
    if plan.compare.is_none() && plan.samples > table.len() {
        return Err(Error::plan(
            "samples",
            plan.samples,
            format!(
                "the table has {} cells; ask for at most that many (--whole-space scores every cell with synflow)",
                table.len()
            ),
        ));
    }
    let images = match ImageSet::fashion_mnist_train(plan.data.as_deref()) {
        Ok(images) => Some(images),
        // Images the user named must be there; only the default may be missing.
        Err(e) if plan.data.is_some() => return Err(e.into()),
        Err(e) => {
            observer.warn(&format!(
                "no Fashion-MNIST ({e}): NASWOT runs on Gaussian noise, grad-norm and snip are left out"
            ));
            None
        }
    };
    let (batch, labels, data_name) = match &images {
        Some(set) => {
            let (batch, labels) = reference_batch(set, plan.batch)?;
            (
                batch,
                Some(labels),
                "Fashion-MNIST (padded to 32x32, 3 channels, normalised)",
            )
        }
        None => (
            Tensor::randn(&[plan.batch, 3, 32, 32], 1.0, 7),
            None,
            "Gaussian noise (no image set found)",
        ),
    };
    let (archs, published): (Vec<Arch>, Option<Vec<BTreeMap<String, f64>>>) = match &plan.compare {
        Some(path) => {
            let cells = read_naslib(path, &plan.dataset)?;
            let (archs, scores) = cells.into_iter().unzip();
            (archs, Some(scores))
        }
        None => {
            let mut archs: Vec<_> = table.archs().collect();
            archs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed));
            archs.truncate(plan.samples);
            (archs, None)
        }
    };
    let net = Nb201Net::default();
    observer.stage("proxies", archs.len() as u64);
    let started = Instant::now();
    let done = std::sync::atomic::AtomicU64::new(0);
    let periodic = PeriodicSynflow::new(SYNFLOW_NET, 0);
    let scores: Vec<[f64; 7]> = archs
        .par_iter()
        .map(|arch| {
            let s = synflow(&SYNFLOW_NET, arch, 32);
            let n = naswot(&net, arch, &batch);
            let (g, sn) = labels.as_ref().map_or((f64::NAN, f64::NAN), |l| {
                grad_norm_and_snip(&net, arch, &batch, l)
            });
            let p = parameter_count(&net, arch);
            let j = jacob_cov(&net, arch, &batch);
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            observer.progress(d, archs.len() as u64, "");
            [s, n, g, sn, p, j, periodic.log10_score(arch)]
        })
        .collect();
    observer.finish();
    let seconds = started.elapsed().as_secs_f64();
    let tests: Vec<f64> = archs
        .iter()
        .map(|a| {
            table.test(a).ok_or_else(|| {
                Error::plan(
                    "compare",
                    Nb201Space::new().format(a),
                    "a cell the table does not hold",
                )
            })
        })
        .collect::<Result<_>>()?;
    let columns: Vec<Vec<f64>> = (0..PROXIES.len())
        .map(|i| scores.iter().map(|s| s[i]).collect())
        .collect();
    let mut proxies = BTreeMap::new();
    let with_tests = |column: &[f64]| {
        let (s, t): (Vec<f64>, Vec<f64>) = column
            .iter()
            .zip(&tests)
            .filter(|(s, _)| !s.is_nan())
            .map(|(s, t)| (*s, *t))
            .unzip();
        (s.len() >= 3).then(|| (spearman(&s, &t), kendall_tau(&s, &t)))
    };
    for (i, name) in PROXIES.iter().enumerate() {
        let Some((rho, tau)) = with_tests(&columns[i]) else {
            continue;
        };
        let (mut with_naslib, mut naslib_test) = (None, None);
        if let Some(published) = &published {
            let pairs: Vec<(f64, f64, f64)> = published
                .iter()
                .zip(&columns[i])
                .zip(&tests)
                .filter_map(|((p, ours), t)| p.get(*name).map(|theirs| (*ours, *theirs, *t)))
                .filter(|(ours, _, _)| !ours.is_nan())
                .collect();
            if pairs.len() >= 3 {
                let ours: Vec<f64> = pairs.iter().map(|p| p.0).collect();
                let theirs: Vec<f64> = pairs.iter().map(|p| p.1).collect();
                let t: Vec<f64> = pairs.iter().map(|p| p.2).collect();
                with_naslib = Some(spearman(&ours, &theirs));
                naslib_test = Some(spearman(&theirs, &t));
            }
        }
        proxies.insert(
            name.to_string(),
            Correlation {
                spearman_test: rho,
                kendall_test: tau,
                spearman_with_naslib: with_naslib,
                naslib_spearman_test: naslib_test,
            },
        );
    }
    let columns_where = |keep: &dyn Fn(&str) -> bool| -> Vec<Vec<f64>> {
        PROXIES
            .iter()
            .zip(&columns)
            .filter(|(name, _)| keep(name))
            .map(|(_, column)| column.clone())
            .collect()
    };
    let column = |name: &str| &columns[PROXIES.iter().position(|p| *p == name).expect("a proxy")];
    for (name, aggregate) in [
        (
            "combined",
            rank_aggregate(&columns_where(&|name| COMBINED.contains(&name))),
        ),
        // Every distinct proxy: the periodic synflow would count synflow twice.
        (
            "combined_all",
            rank_aggregate(&columns_where(&|name| name != "synflow_periodic")),
        ),
    ] {
        if let Some((rho, tau)) = with_tests(&aggregate) {
            proxies.insert(
                name.into(),
                Correlation {
                    spearman_test: rho,
                    kendall_test: tau,
                    spearman_with_naslib: None,
                    naslib_spearman_test: None,
                },
            );
        }
    }
    let whole_space = plan.whole_space.then(|| whole_space(&table, observer));
    Ok(ProxyReport {
        samples: archs.len(),
        proxies,
        periodic_vs_zero_padded: Some(spearman(column("synflow"), column("synflow_periodic"))),
        seconds,
        dataset: plan.dataset.clone(),
        data: data_name.to_string(),
        whole_space,
    })
}

fn whole_space(table: &Nb201Table, observer: &dyn Observer) -> WholeSpace {
    let all: Vec<_> = table.archs().collect();
    observer.stage("zero-cost", all.len() as u64);
    let started = Instant::now();
    let periodic = PeriodicSynflow::new(SYNFLOW_NET, 0);
    let scores: Vec<f64> = all.par_iter().map(|a| periodic.log10_score(a)).collect();
    let seconds = started.elapsed().as_secs_f64();
    observer.finish();
    let tests: Vec<f64> = all
        .iter()
        .map(|a| table.test(a).expect("from the table"))
        .collect();
    let best = (0..all.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .expect("cells");
    WholeSpace {
        proxy: "synflow_periodic".into(),
        arch: Nb201Space::new().format(&all[best]),
        test_accuracy: tests[best],
        seconds,
        cells: all.len(),
        table_optimum: table.test(&table.best_by_test()).expect("from the table"),
        spearman_test: spearman(&scores, &tests),
    }
}

impl ProxyReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} NAS-Bench-201 cells ({}), proxies at initialisation on {}, in {:.1} s\n",
            self.samples, self.dataset, self.data, self.seconds
        );
        if !self.proxies.is_empty() {
            _ = writeln!(
                text,
                "{:<16} {:>9} {:>9} {:>14} {:>14}",
                "proxy", "spearman", "kendall", "vs NASLib's", "NASLib's rho"
            );
        }
        let optional = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        for (name, c) in &self.proxies {
            _ = writeln!(
                text,
                "{:<16} {:>9.3} {:>9.3} {:>14} {:>14}",
                name,
                c.spearman_test,
                c.kendall_test,
                optional(c.spearman_with_naslib),
                optional(c.naslib_spearman_test)
            );
        }
        if let Some(rho) = self.periodic_vs_zero_padded {
            _ = writeln!(
                text,
                "synflow_periodic vs the zero-padded synflow on these cells: Spearman {rho:.3}"
            );
        }
        if let Some(w) = &self.whole_space {
            _ = write!(
                text,
                "zero-cost search ({}) of all {} cells: {:.2} s; chose {} with test {:.2} (table optimum {:.2}); Spearman with test over all cells {:.3}",
                w.proxy,
                w.cells,
                w.seconds,
                w.arch,
                w.test_accuracy,
                w.table_optimum,
                w.spearman_test
            );
        }
        text
    }
}
