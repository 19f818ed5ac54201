//! Two models timed alone (one after the other) and in one interleaved run, in alternating
//! rounds: whether interleaving changes their ratio (a cold cache after the other model).
//!
//! `cargo run --release -p hwnas-latency --example paired_vs_alone -- A.onnx B.onnx [ROUNDS]`

use hwnas_latency::profile::{Protocol, profile, profile_interleaved};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = std::fs::read(args.first().ok_or("give two ONNX files")?)?;
    let b = std::fs::read(args.get(1).ok_or("give two ONNX files")?)?;
    let rounds: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let protocol = Protocol::default();
    println!(
        "| round | A alone | B alone | A/B alone | A beside B | B beside A | A/B interleaved |"
    );
    println!("|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let (alone_a, alone_b) = (
            profile(&a, &protocol)?.stats.median_ms,
            profile(&b, &protocol)?.stats.median_ms,
        );
        let both = profile_interleaved(&[&a, &b], &protocol)?;
        let (pa, pb) = (both[0].stats.median_ms, both[1].stats.median_ms);
        println!(
            "| {round} | {alone_a:.3} | {alone_b:.3} | {:.4} | {pa:.3} | {pb:.3} | {:.4} |",
            alone_a / alone_b,
            pa / pb
        );
    }
    Ok(())
}
