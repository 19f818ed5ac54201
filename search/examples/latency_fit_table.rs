//! The few-shot latency fit on every device column of a table, each left out in turn, for
//! several sample counts and seeds: the figures of docs/BENCHMARKS.md.
//!
//! `cargo run --release -p hwnas-search --example latency_fit_table -- TABLE [SPACE] [SEEDS]`

use hwnas_latency::fewshot::DeviceTable;
use hwnas_search::device_fit::{FitRequest, fit_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = args.first().ok_or("give a table file")?;
    let space = args.get(1).map_or("nb201", String::as_str);
    let seeds: u64 = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let columns: Vec<String> = DeviceTable::load(table.as_ref(), space)?
        .columns
        .iter()
        .filter(|c| c.complete())
        .map(|c| c.name.clone())
        .collect();
    println!("| device | K=5 | K=10 | K=20 | K=50 |");
    println!("|---|---|---|---|---|");
    for device in &columns {
        let mut cells = Vec::new();
        for samples in [5, 10, 20, 50] {
            let (mut spearman, mut within) = (0.0, 0.0);
            for seed in 0..seeds {
                let report = fit_device(&FitRequest {
                    space: space.to_string(),
                    table: Some(table.into()),
                    device: Some(device.clone()),
                    target: None,
                    samples,
                    seed,
                    out: None,
                    held_out: 0,
                    runs: None,
                })?;
                let score = report.score.ok_or("a table column is always scored")?;
                spearman += score.spearman / seeds as f64;
                within += score.within_10pct / seeds as f64;
            }
            cells.push(format!("{spearman:.3} / {:.0}%", within * 100.0));
        }
        println!("| {device} | {} |", cells.join(" | "));
    }
    Ok(())
}
