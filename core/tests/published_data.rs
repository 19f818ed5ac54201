//! Checks against the real published data in `../shared/data/` (see its SOURCES.md). Each
//! test skips, saying why on standard error, when the data is absent (a failure under
//! `HWNAS_REQUIRE=data`).

use std::sync::Arc;

use hwnas_core::benchmark::nb201::{Nb201Table, SHARED_TABLE, TABLE_ENV};
use hwnas_core::benchmark::ofa::{
    NOTE10_DIR, Note10Lut, OfaPredictor, PREDICTOR_FILE, locate_ofa_files,
};
use hwnas_core::space::SearchSpace;
use hwnas_core::space::nb201::Nb201Space;
use hwnas_core::space::ofa::{OfaConfig, OfaSpace};
use hwnas_core::{Evaluator, LatencyModel, data};

fn real_table() -> Option<Nb201Table> {
    let path = hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "the NAS-Bench-201 table",
        data::locate(TABLE_ENV, SHARED_TABLE).ok_or(format!(
            "set {TABLE_ENV} or provide ../shared/data/{SHARED_TABLE}"
        )),
    )?;
    Some(Nb201Table::load(&path, "cifar10").expect("the real table loads"))
}

#[test]
fn nb201_table_indices_strings_and_optimum() {
    let Some(table) = real_table() else { return };
    assert_eq!(table.len(), 15_625);
    let space = Nb201Space::new();
    for index in 0..table.len() {
        let arch = table.arch_at(index).unwrap();
        let text = space.format(&arch);
        let parsed = space.parse(&text).unwrap();
        assert_eq!(table.index_of(&parsed), Some(index), "{text}");
    }
    let best = table.best_by_test();
    assert_eq!(table.index_of(&best), Some(6111));
    assert!((table.test(&best).unwrap() - 94.3733).abs() < 1e-3);
    let first = table.arch_at(0).unwrap();
    assert_eq!(
        space.format(&first),
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    );
}

#[test]
fn nb201_device_latencies_are_table_targets() {
    let Some(table) = real_table() else { return };
    let table = Arc::new(table);
    let devices = table.latency_devices();
    for device in ["pixel3", "raspi4", "hwnb-edgegpu"] {
        assert!(devices.contains(&device.to_string()), "{devices:?}");
    }
    let pixel3 = table.latency_column("pixel3").unwrap();
    let arch = table.arch_at(1).unwrap();
    assert!((pixel3.latency_ms(&arch).unwrap() - 17.2381).abs() < 1e-6);
    // HW-NAS-Bench columns are empty for some cells: a clear error, not a zero.
    let edge = table.latency_column("hwnb-edgegpu").unwrap();
    assert!(edge.latency_ms(&table.arch_at(0).unwrap()).is_err());
}

fn ofa_dir() -> Option<std::path::PathBuf> {
    hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "Once-for-All's files (../shared/data/ofa-mobilenetv3)",
        locate_ofa_files(None),
    )
}

fn uniform(ks: u32, e: u32, d: u32, r: u32) -> OfaConfig {
    OfaConfig {
        ks: vec![ks; 20],
        e: vec![e; 20],
        d: vec![d; 5],
        r,
    }
}

#[test]
fn ofa_predictor_matches_the_published_figures() {
    let Some(dir) = ofa_dir() else { return };
    let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), OfaSpace::default()).unwrap();
    let largest = predictor.predict(&uniform(7, 6, 4, 224));
    let smallest = predictor.predict(&uniform(3, 3, 2, 160));
    assert!((largest - 0.836).abs() < 0.0005, "largest {largest}");
    assert!((smallest - 0.753).abs() < 0.0005, "smallest {smallest}");
    let space = OfaSpace::default();
    let arch = space.from_config(&uniform(7, 6, 4, 224)).unwrap();
    assert!((predictor.evaluate(&arch).unwrap().accuracy - 83.6).abs() < 0.05);
}

#[test]
fn ofa_predictions_and_latencies_do_not_depend_on_how_they_are_asked() {
    let Some(dir) = ofa_dir() else { return };
    let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), OfaSpace::default()).unwrap();
    let lut = Note10Lut::load(&dir.join(NOTE10_DIR)).unwrap();
    let space = lut.space().clone();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
    let archs: Vec<_> = (0..257).map(|_| space.sample(&mut rng)).collect();
    let configs: Vec<OfaConfig> = archs.iter().map(|a| space.config(a)).collect();
    // A round at once, a few at a time, one at a time: the same bits (a resumed search
    // asks the rest of an interrupted round and must get what the whole round got).
    let together = predictor.predict_many(&configs);
    let in_threes: Vec<f64> = configs
        .chunks(3)
        .flat_map(|c| predictor.predict_many(c))
        .collect();
    for ((config, batched), few) in configs.iter().zip(&together).zip(&in_threes) {
        let alone = predictor.predict(config);
        assert_eq!(alone.to_bits(), batched.to_bits());
        assert_eq!(alone.to_bits(), few.to_bits());
    }
    let evaluations = predictor.evaluate_many(&archs).unwrap();
    let alone = predictor.evaluate(&archs[3]).unwrap().accuracy;
    assert_eq!(evaluations[3].accuracy, alone);
    // The resolved table adds what the keys look up, in the same order.
    for config in &configs {
        let fast = lut.latency_of(config).unwrap();
        let by_keys = lut.latency_by_keys(config).unwrap();
        assert_eq!(fast.to_bits(), by_keys.to_bits(), "{config:?}");
    }
}

#[test]
fn note10_lookup_table_matches_the_published_figure() {
    let Some(dir) = ofa_dir() else { return };
    let lut = Note10Lut::load(&dir.join(NOTE10_DIR)).unwrap();
    let largest = lut.latency_of(&uniform(7, 6, 4, 224)).unwrap();
    assert!((largest - 92.4).abs() < 0.05, "largest {largest}");
    // Every subnet at every tabulated resolution has all its layers in the table.
    let space = lut.space().clone();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    for _ in 0..200 {
        let arch = space.sample(&mut rng);
        let latency = lut.latency_ms(&arch).unwrap();
        assert!(latency > 5.0 && latency < 92.5, "{latency}");
    }
    assert!(lut.latency_of(&uniform(3, 3, 2, 128)).is_err());
}

/// Once-for-All's own published Note10 subnets, scored by the same predictor and lookup
/// table the searches use: their table latency must meet the constraint they were
/// specialised for (the check that the table's keys are built as Once-for-All builds them).
#[test]
fn ofa_published_note10_subnets_meet_their_constraints() {
    let Some(dir) = ofa_dir() else { return };
    let archive = dir.join("ofa_specialized_configs.tar.gz");
    let listing = std::fs::read_to_string(dir.join("ofa_specialized.csv")).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .args([
            "xzf",
            archive.to_str().unwrap(),
            "-C",
            unpacked.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let lut = Note10Lut::load(&dir.join(NOTE10_DIR)).unwrap();
    let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), OfaSpace::default()).unwrap();
    let mut checked = 0;
    for line in listing.lines().filter(|l| l.starts_with("note10_")) {
        let fields: Vec<&str> = line.split(',').collect();
        let (name, constraint, top1, r) = (
            fields[0],
            fields[3].parse::<f64>().unwrap(),
            fields[6],
            fields[8].parse::<u32>().unwrap(),
        );
        if !(160..=224).contains(&r) {
            println!("{name}: resolution {r} is outside the tables (160..224), not scored");
            continue;
        }
        let text = std::fs::read_to_string(
            unpacked
                .path()
                .join("ofa_specialized")
                .join(name)
                .join("net.config"),
        )
        .unwrap();
        let config = match OfaConfig::from_net_config(&text, r) {
            Ok(config) => config,
            Err(e) => {
                println!("{name}: not the w1.2 supernet's widths, not scored ({e})");
                continue;
            }
        };
        let latency = lut.latency_of(&config).unwrap();
        let predicted = predictor.predict(&config) * 100.0;
        println!(
            "{name}: r {r}, d {:?}, table {latency:.2} ms (constraint {constraint}), predictor {predicted:.2}% (published top-1 after fine-tuning {top1}%)",
            config.d
        );
        assert!(latency <= constraint * 1.05, "{name}: {latency} ms");
        checked += 1;
    }
    assert!(checked >= 3, "{checked} subnets checked");
}
