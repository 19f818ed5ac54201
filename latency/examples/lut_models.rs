//! The end-to-end models of this machine's lookup table compared: N calibration subnets
//! (seed 1) and M held-out ones (seed 2), each measured beside the table's reference
//! subnet; every kind's 5-fold error on the calibration subnets and its error on the
//! held-out ones when fitted on all calibration subnets, judged beside the reference and
//! against the raw medians.
//!
//! `cargo run --release -p hwnas-latency --example lut_models -- N M`

use hwnas_latency::lut::{host_lut, report};
use hwnas_latency::lut_model::{EndToEndModel, KINDS};
use hwnas_latency::profile::Protocol;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (n, m) = (
        args.first().copied().unwrap_or(60),
        args.get(1).copied().unwrap_or(100),
    );
    let protocol = Protocol::default();
    let resolutions: Vec<u32> = (160..=224).step_by(16).collect();
    let progress = |done: usize, total: usize, what: &str| {
        if done.is_multiple_of(20) {
            eprintln!("{done} of {total} {what}");
        }
    };
    let warn = |w: &str| eprintln!("warning: {w}");
    let (lut, _) = host_lut(&resolutions, &protocol, 30, &progress, &warn)?;
    let calibration = lut.measure_subnets(n, 1, &protocol, &progress)?;
    let held_out = lut.measure_subnets(m, 2, &protocol, &progress)?;
    let points: Vec<(Vec<f64>, f64)> = calibration
        .iter()
        .map(|s| (s.features.clone(), s.ms))
        .collect();
    let chosen = EndToEndModel::choose(points)?;
    println!(
        "| model | 5-fold RMSE ms | 5-fold within ±10% | held-out RMSE ms | within ±5% | within ±10% | raw medians: within ±10% |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kind in KINDS {
        let model = EndToEndModel {
            kind: kind.to_string(),
            ..chosen.clone()
        };
        let predictor = model.predictor()?;
        let mut paired = Vec::new();
        let mut raw = Vec::new();
        for subnet in &held_out {
            let predicted = predictor.predict_ms(&subnet.features)?;
            paired.push((predicted, subnet.ms));
            raw.push((predicted, subnet.raw_ms));
        }
        let (r, raw) = (report(&paired), report(&raw));
        let cv = chosen
            .cross_validation
            .iter()
            .find(|k| k.kind == kind)
            .expect("every kind is cross-validated");
        println!(
            "| {kind}{} | {:.3} | {:.0}% | {:.3} | {:.0}% | {:.0}% | {:.0}% |",
            if kind == chosen.kind { " (chosen)" } else { "" },
            cv.rmse_ms,
            cv.within_10pct * 100.0,
            r.rmse_ms,
            r.within_5pct * 100.0,
            r.within_10pct * 100.0,
            raw.within_10pct * 100.0
        );
    }
    Ok(())
}
