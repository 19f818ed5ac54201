//! `hwnas proxies`: training-free proxies on NAS-Bench-201 cells, judged by rank
//! correlation with the table's test accuracy, and a timed zero-cost search.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
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

use crate::progress;

/// Options of `hwnas proxies`.
#[derive(Debug, Args)]
pub struct ProxiesArgs {
    /// Search space (nb201).
    #[arg(long, default_value = "nb201")]
    space: String,
    /// Cells sampled from the table.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// NAS-Bench-201 table; default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Dataset columns of the table.
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Images per batch for NASWOT, grad-norm and snip.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Folder with Fashion-MNIST's IDX files (default: Debian's package, or the shared data);
    /// without it NASWOT runs on Gaussian noise and grad-norm / snip are skipped.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also score every cell of the space with synflow and time the zero-cost search.
    #[arg(long)]
    whole_space: bool,
    /// Seeds the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Correlation {
    proxy: String,
    spearman: f64,
    kendall: f64,
    samples: usize,
}

#[derive(Debug, Serialize)]
struct WholeSpace {
    cells: usize,
    seconds: f64,
    best_arch: String,
    best_test_accuracy: f64,
    table_optimum: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    data: String,
    correlations: Vec<Correlation>,
    seconds: f64,
    whole_space: Option<WholeSpace>,
}

/// Runs `hwnas proxies`.
pub fn run(args: &ProxiesArgs) -> Result<ExitCode> {
    if args.space != "nb201" {
        bail!(
            "--space {}: proxies are computed on NAS-Bench-201 cells (nb201), where a table judges them",
            args.space
        );
    }
    if args.samples < 3 || args.batch < 2 {
        bail!("--samples must be at least 3 and --batch at least 2");
    }
    let table = Nb201Table::load(&Nb201Table::locate(args.table.as_deref())?, &args.dataset)?;
    let net = Nb201Net::default();
    let images = ImageSet::fashion_mnist_train(args.data.as_deref()).ok();
    let (batch, labels, data_name) = match &images {
        Some(set) => {
            let (pixels, labels) = set.batch_rgb(0, args.batch, 32);
            (
                Tensor::new(&[args.batch, 3, 32, 32], pixels)?,
                Some(labels),
                "Fashion-MNIST (padded to 32x32, 3 channels)",
            )
        }
        None => (
            Tensor::randn(&[args.batch, 3, 32, 32], 1.0, 7),
            None,
            "Gaussian noise (no image set found)",
        ),
    };
    let mut archs: Vec<_> = table.archs().collect();
    archs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(args.seed));
    archs.truncate(args.samples.min(archs.len()));
    let bar = progress::bar("proxies", archs.len() as u64);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = Instant::now();
    let scores: Vec<[f64; 4]> = archs
        .par_iter()
        .map(|arch| {
            let s = synflow(&SYNFLOW_NET, arch, 32);
            let n = naswot(&net, arch, &batch);
            let (g, sn) = labels.as_ref().map_or((f64::NAN, f64::NAN), |l| {
                grad_norm_and_snip(&net, arch, &batch, l)
            });
            bar.inc(1);
            [s, n, g, sn]
        })
        .collect();
    bar.finish_and_clear();
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
        let pairs: Vec<(f64, f64)> = scores
            .iter()
            .zip(&tests)
            .map(|(s, t)| (s[i], *t))
            .filter(|(s, _)| !s.is_nan())
            .collect();
        if pairs.len() < 3 {
            continue;
        }
        let (s, t): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        correlations.push(Correlation {
            proxy: name.to_string(),
            spearman: spearman(&s, &t),
            kendall: kendall_tau(&s, &t),
            samples: s.len(),
        });
    }
    let whole_space = args.whole_space.then(|| {
        let all: Vec<_> = table.archs().collect();
        let bar = progress::bar("zero-cost", all.len() as u64);
        let started = Instant::now();
        let scores: Vec<f64> = all
            .par_iter()
            .map(|a| {
                let s = synflow(&SYNFLOW_NET, a, 32);
                bar.inc(1);
                s
            })
            .collect();
        bar.finish_and_clear();
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
    });
    let report = Report {
        dataset: args.dataset.clone(),
        data: data_name.to_string(),
        correlations,
        seconds,
        whole_space,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} NAS-Bench-201 cells ({}), proxies at initialisation on {}, in {:.1} s",
            archs.len(),
            args.dataset,
            report.data,
            report.seconds
        );
        println!("{:<10} {:>9} {:>9}", "proxy", "spearman", "kendall");
        for c in &report.correlations {
            println!("{:<10} {:>9.3} {:>9.3}", c.proxy, c.spearman, c.kendall);
        }
        if let Some(w) = &report.whole_space {
            println!(
                "zero-cost search (synflow) of all {} cells: {:.1} s; chose {} with test {:.2} (table optimum {:.2})",
                w.cells, w.seconds, w.best_arch, w.best_test_accuracy, w.table_optimum
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
