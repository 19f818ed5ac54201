//! Training-free proxies on NAS-Bench-201 cells, judged by rank correlation with the
//! table's test accuracy, and a timed zero-cost search of the whole space.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use hwnas_core::benchmark::Nb201Table;
use hwnas_core::images::ImageSet;
use hwnas_core::kernels::Tensor;
use hwnas_core::proxies::{
    Nb201Net, SYNFLOW_NET, grad_norm_and_snip, kendall_tau, naswot, spearman, synflow,
};
use hwnas_core::space::{Nb201Space, SearchSpace};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::observer::Observer;

/// What to score.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// Cells sampled from the table.
    pub samples: usize,
    /// The NAS-Bench-201 table; `None` for `$HWNAS_NB201_TABLE` or the shared data.
    pub table: Option<PathBuf>,
    /// The table's data set columns.
    pub dataset: String,
    /// Images per batch for NASWOT, grad-norm and snip.
    pub batch: usize,
    /// Fashion-MNIST's folder; `None` for Debian's package or the shared data.
    pub data: Option<PathBuf>,
    /// Also score every cell with synflow, timed.
    pub whole_space: bool,
    /// Seeds the sample.
    pub seed: u64,
}

/// One proxy's rank correlation with test accuracy.
#[derive(Debug, Serialize)]
pub struct Correlation {
    /// The proxy.
    pub proxy: String,
    /// Spearman's rho.
    pub spearman: f64,
    /// Kendall's tau.
    pub kendall: f64,
    /// Cells it was computed on.
    pub samples: usize,
}

/// The zero-cost search of every cell.
#[derive(Debug, Serialize)]
pub struct WholeSpace {
    /// Cells scored.
    pub cells: usize,
    /// Seconds it took.
    pub seconds: f64,
    /// The cell synflow ranks first.
    pub best_arch: String,
    /// Its test accuracy.
    pub best_test_accuracy: f64,
    /// The table's best test accuracy.
    pub table_optimum: f64,
}

/// What `hwnas proxies` reports.
#[derive(Debug, Serialize)]
pub struct ProxyReport {
    /// The table's data set.
    pub dataset: String,
    /// The images the data-dependent proxies saw.
    pub data: String,
    /// Per proxy.
    pub correlations: Vec<Correlation>,
    /// Seconds the sample took.
    pub seconds: f64,
    /// The whole-space search, when asked.
    pub whole_space: Option<WholeSpace>,
}

/// Scores the plan's cells with every proxy.
pub fn score(plan: &ProxyPlan, observer: &dyn Observer) -> Result<ProxyReport> {
    if plan.samples < 3 {
        return Err(Error::plan(
            "samples",
            plan.samples,
            "at least 3 cells to rank",
        ));
    }
    if plan.batch < 2 {
        return Err(Error::plan("batch", plan.batch, "at least 2 images"));
    }
    let table = Nb201Table::load(&Nb201Table::locate(plan.table.as_deref())?, &plan.dataset)?;
    if plan.samples > table.len() {
        return Err(Error::plan(
            "samples",
            plan.samples,
            format!(
                "the table has {} cells; ask for at most that many (--whole-space scores every cell with synflow)",
                table.len()
            ),
        ));
    }
    let net = Nb201Net::default();
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
            let (pixels, labels) = set.batch_rgb(0, plan.batch, 32);
            (
                Tensor::new(&[plan.batch, 3, 32, 32], pixels).map_err(hwnas_core::Error::from)?,
                Some(labels),
                "Fashion-MNIST (padded to 32x32, 3 channels)",
            )
        }
        None => (
            Tensor::randn(&[plan.batch, 3, 32, 32], 1.0, 7),
            None,
            "Gaussian noise (no image set found)",
        ),
    };
    let mut archs: Vec<_> = table.archs().collect();
    archs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed));
    archs.truncate(plan.samples.min(archs.len()));
    observer.stage("proxies", archs.len() as u64);
    let started = Instant::now();
    let done = std::sync::atomic::AtomicU64::new(0);
    let scores: Vec<[f64; 4]> = archs
        .par_iter()
        .map(|arch| {
            let s = synflow(&SYNFLOW_NET, arch, 32);
            let n = naswot(&net, arch, &batch);
            let (g, sn) = labels.as_ref().map_or((f64::NAN, f64::NAN), |l| {
                grad_norm_and_snip(&net, arch, &batch, l)
            });
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            observer.progress(d, archs.len() as u64, "");
            [s, n, g, sn]
        })
        .collect();
    observer.finish();
    let seconds = started.elapsed().as_secs_f64();
    let tests: Vec<f64> = archs
        .iter()
        .map(|a| table.test(a).expect("from the table"))
        .collect();
    let mut correlations = Vec::new();
    for (i, name) in ["synflow", "naswot", "grad_norm", "snip"]
        .iter()
        .enumerate()
    {
        let (s, t): (Vec<f64>, Vec<f64>) = scores
            .iter()
            .zip(&tests)
            .map(|(s, t)| (s[i], *t))
            .filter(|(s, _)| !s.is_nan())
            .unzip();
        if s.len() >= 3 {
            correlations.push(Correlation {
                proxy: name.to_string(),
                spearman: spearman(&s, &t),
                kendall: kendall_tau(&s, &t),
                samples: s.len(),
            });
        }
    }
    let whole_space = plan.whole_space.then(|| whole_space(&table, observer));
    Ok(ProxyReport {
        dataset: plan.dataset.clone(),
        data: data_name.to_string(),
        correlations,
        seconds,
        whole_space,
    })
}

fn whole_space(table: &Nb201Table, observer: &dyn Observer) -> WholeSpace {
    let all: Vec<_> = table.archs().collect();
    observer.stage("zero-cost", all.len() as u64);
    let started = Instant::now();
    let scores: Vec<f64> = all
        .par_iter()
        .map(|a| synflow(&SYNFLOW_NET, a, 32))
        .collect();
    observer.finish();
    let best = (0..all.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .expect("cells");
    WholeSpace {
        cells: all.len(),
        seconds: started.elapsed().as_secs_f64(),
        best_arch: Nb201Space::new().format(&all[best]),
        best_test_accuracy: table.test(&all[best]).expect("from the table"),
        table_optimum: table.test(&table.best_by_test()).expect("from the table"),
    }
}

impl ProxyReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let samples = self.correlations.first().map_or(0, |c| c.samples);
        _ = writeln!(
            text,
            "{samples} NAS-Bench-201 cells ({}), proxies at initialisation on {}, in {:.1} s",
            self.dataset, self.data, self.seconds
        );
        _ = writeln!(text, "{:<10} {:>9} {:>9}", "proxy", "spearman", "kendall");
        for c in &self.correlations {
            _ = writeln!(
                text,
                "{:<10} {:>9.3} {:>9.3}",
                c.proxy, c.spearman, c.kendall
            );
        }
        if let Some(w) = &self.whole_space {
            _ = write!(
                text,
                "zero-cost search (synflow) of all {} cells: {:.1} s; chose {} with test {:.2} (table optimum {:.2})",
                w.cells, w.seconds, w.best_arch, w.best_test_accuracy, w.table_optimum
            );
        }
        text
    }
}
