//! A heavy NAS-Bench-201 cell beside three lighter ones, each pair timed alone (one model
//! after the other, the fastest of three profiles) and in one interleaved run with and
//! without a rewarm before each timed run: whether interleaving changes their ratio (a cold
//! cache after the other model), and whether the rewarm undoes it.
//!
//! `cargo run --release -p hwnas-latency --example paired_vs_alone -- [ROUNDS] [RUNS]`

use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::{Protocol, Rewarm, profile, profile_interleaved_with};

const HEAVY: &str = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|";
const LIGHT: [(&str, &str); 3] = [
    (
        "mixed",
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|",
    ),
    (
        "skips",
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    ),
    (
        "1x1s",
        "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().map_or(Ok(2), |r| r.parse())?;
    let runs: usize = args.get(1).map_or(Ok(100), |r| r.parse())?;
    let model = |arch: &str| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let graph = export_arch(
            "nb201",
            arch,
            &mut RandomWeights::new(0),
            ExportOptions::default(),
        )?;
        Ok(encode(&graph))
    };
    let heavy = model(HEAVY)?;
    let protocol = Protocol {
        min_runs: runs,
        max_runs: runs,
        ..Protocol::default()
    };
    println!(
        "| light cell | round | alone (ms) | ratio | plain (ms) | ratio | rewarmed (ms) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, arch) in LIGHT {
        let light = model(arch)?;
        for round in 1..=rounds {
            let (mut h, mut l) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..3 {
                h = h.min(profile(&heavy, &protocol)?.stats.median_ms);
                l = l.min(profile(&light, &protocol)?.stats.median_ms);
            }
            let mut cells = vec![format!("{h:.2} / {l:.2} | {:.2}", h / l)];
            for rewarm in [Rewarm::Never, Rewarm::EachRun] {
                let both = profile_interleaved_with(&[&heavy, &light], &protocol, rewarm)?;
                let (ph, pl) = (both[0].stats.median_ms, both[1].stats.median_ms);
                cells.push(format!("{ph:.2} / {pl:.2} | {:.2}", ph / pl));
            }
            println!("| {name} | {round} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}
