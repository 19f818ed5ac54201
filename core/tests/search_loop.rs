//! The search loop and the baseline strategies on a synthetic table: determinism, budgets,
//! latency constraints, and that learning strategies beat random search.

use std::sync::Arc;

use hwnas_core::bench::{BenchSpec, run_bench, summarise};
use hwnas_core::benchmark::Nb201Table;
use hwnas_core::space::nb201::Nb201Space;
use hwnas_core::{Budget, Objective, Oracle, SearchConfig, run_search, strategy};

/// A full synthetic table where accuracy rises with 3x3 convolutions and falls with `none`,
/// plus a per-cell wobble, and latency rises with convolutions.
fn synthetic_table(dir: &std::path::Path) -> Arc<Nb201Table> {
    let path = dir.join("toy.csv");
    hwnas_testkit::write_nb201_table(&path, "toy", "toyphone", |cell| {
        let wobble = ((cell.index * 7919) % 101) as f64 / 100.0;
        let val = 50.0 + 6.0 * cell.count(3) + 3.0 * cell.count(2) - 4.0 * cell.count(0) + wobble;
        (val, val + 2.0, 1.0 + 3.0 * cell.count(3) + cell.count(2))
    });
    Arc::new(Nb201Table::load(&path, "toy").unwrap())
}

fn run(name: &str, table: &Nb201Table, seed: u64, queries: usize) -> hwnas_core::History {
    let space = Nb201Space::new();
    let mut strategy = strategy::by_name(name, &space).unwrap();
    let oracle = Oracle::new(table, None);
    let config = SearchConfig::new(Budget::Queries(queries), seed);
    run_search(&space, strategy.as_mut(), &oracle, &config, &mut |_| Ok(())).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_history_twice() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    for name in strategy::NAMES {
        let a = run(name, &table, 11, 60);
        let b = run(name, &table, 11, 60);
        assert_eq!(a.records(), b.records(), "{name}");
        let c = run(name, &table, 12, 60);
        assert_ne!(
            a.records(),
            c.records(),
            "{name}: another seed, another run"
        );
        assert_eq!(
            a.len(),
            60,
            "{name}: the budget counts distinct architectures"
        );
    }
}

#[test]
fn learning_strategies_beat_random_search() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    let spec = BenchSpec {
        strategies: vec!["random".into(), "rea".into(), "reinforce".into()],
        seeds: 12,
        first_seed: 0,
        queries: 200,
        objective: Objective::Accuracy,
        screen_infeasible: true,
        batch: 1,
    };
    let runs = run_bench(&space, table.as_ref(), None, &spec, &|_| {}).unwrap();
    let best = table.best_by_validation();
    let rows = summarise(&runs, "toy", &best, &[200]);
    let mean = |name: &str| rows.iter().find(|r| r.strategy == name).unwrap().mean_test;
    assert!(mean("rea") > mean("random"), "{rows:?}");
    assert!(mean("reinforce") > mean("random") - 0.5, "{rows:?}");
    let optimum = table.test(&best).unwrap();
    assert!(mean("rea") > optimum - 3.0, "{rows:?}");
}

#[test]
fn a_latency_budget_is_respected_by_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    let latency = table.latency_column("toyphone").unwrap();
    for name in strategy::NAMES {
        let mut strategy = strategy::by_name(name, &space).unwrap();
        let oracle = Oracle::new(table.as_ref(), Some(&latency));
        let mut config = SearchConfig::new(Budget::Queries(150), 5);
        config.objective = Objective::latency_budget(8.0);
        let history =
            run_search(&space, strategy.as_mut(), &oracle, &config, &mut |_| Ok(())).unwrap();
        let answer = history.selected(150).expect("some feasible cell was found");
        assert!(answer.latency_ms.unwrap() <= 8.0, "{name}: {answer:?}");
    }
}

#[test]
fn a_seconds_budget_without_training_times_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    let mut strategy = strategy::by_name("random", &space).unwrap();
    let oracle = Oracle::new(table.as_ref(), None);
    let config = SearchConfig::new(Budget::Seconds(1000.0), 1);
    let error = run_search(&space, strategy.as_mut(), &oracle, &config, &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("training-time") && error.contains("query budget"),
        "{error}"
    );
    let error = strategy::by_name("bogus", &space)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("bogus") && error.contains("rea"), "{error}");
}

/// Scores batches with the table, recording each batch's size.
struct CountingExecutor<'a> {
    table: &'a Nb201Table,
    sizes: std::sync::Mutex<Vec<usize>>,
}

impl hwnas_core::BatchEvaluator for CountingExecutor<'_> {
    fn evaluate_batch(
        &self,
        archs: &[hwnas_core::Arch],
    ) -> hwnas_core::Result<Vec<hwnas_core::Evaluation>> {
        use hwnas_core::Evaluator;
        self.sizes.lock().unwrap().push(archs.len());
        archs.iter().map(|a| self.table.evaluate(a)).collect()
    }
}

#[test]
fn batched_proposals_are_distinct_reach_the_executor_whole_and_do_not_depend_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    for name in strategy::NAMES {
        let batched = |executor: Option<&dyn hwnas_core::BatchEvaluator>| {
            let mut strategy = strategy::by_name(name, &space).unwrap();
            let mut oracle = Oracle::new(table.as_ref(), None);
            oracle.executor = executor;
            let mut config = SearchConfig::new(Budget::Queries(62), 4);
            config.batch = 5;
            run_search(&space, strategy.as_mut(), &oracle, &config, &mut |_| Ok(())).unwrap()
        };
        let executor = CountingExecutor {
            table: &table,
            sizes: std::sync::Mutex::new(Vec::new()),
        };
        let through_executor = batched(Some(&executor));
        let alone = batched(None);
        assert_eq!(through_executor.records(), alone.records(), "{name}");
        assert_eq!(through_executor.len(), 62, "{name}");
        let distinct: std::collections::HashSet<_> =
            alone.records().iter().map(|r| r.arch.clone()).collect();
        assert_eq!(
            distinct.len(),
            62,
            "{name}: every proposal a new architecture"
        );
        // Twelve whole batches of five, then the two queries the budget has left.
        let mut expected = vec![5; 12];
        expected.push(2);
        assert_eq!(*executor.sizes.lock().unwrap(), expected, "{name}");
        // One at a time is another run of a strategy that learns after each record
        // (REINFORCE updates its policy once per batch of its own, random never learns).
        if name == "rea" {
            let one_at_a_time = run(name, &table, 4, 62);
            assert!(alone.records() != one_at_a_time.records(), "{name}");
        }
    }
}

#[test]
fn under_a_budget_with_a_table_proposals_over_it_are_drawn_again_before_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    let latency = table.latency_column("toyphone").unwrap();
    for name in strategy::NAMES {
        let infeasible = |screen: bool| {
            let mut strategy = strategy::by_name(name, &space).unwrap();
            let oracle = Oracle::new(table.as_ref(), Some(&latency));
            let mut config = SearchConfig::new(Budget::Queries(150), 5);
            config.objective = Objective::latency_budget(6.0);
            config.screen_infeasible = screen;
            let history =
                run_search(&space, strategy.as_mut(), &oracle, &config, &mut |_| Ok(())).unwrap();
            history.records().iter().filter(|r| !r.feasible).count()
        };
        let (screened, unscreened) = (infeasible(true), infeasible(false));
        // About half the cells are over 6 ms; screened, none is queried (the random fill
        // of an exhausted strategy aside).
        assert!(screened <= 2, "{name}: {screened} infeasible queries");
        assert!(
            unscreened > 10,
            "{name}: {unscreened} infeasible queries unscreened"
        );
    }
}

#[test]
fn generational_evolution_beats_random_search_given_generations() {
    let dir = tempfile::tempdir().unwrap();
    let table = synthetic_table(dir.path());
    let space = Nb201Space::new();
    let spec = BenchSpec {
        strategies: vec!["random".into(), "evolution".into()],
        seeds: 8,
        first_seed: 0,
        queries: 600,
        objective: Objective::Accuracy,
        screen_infeasible: true,
        batch: 1,
    };
    let runs = run_bench(&space, table.as_ref(), None, &spec, &|_| {}).unwrap();
    let best = table.best_by_validation();
    let rows = summarise(&runs, "toy", &best, &[100, 600]);
    let mean = |name: &str, at: usize| {
        rows.iter()
            .find(|r| r.strategy == name && r.queries == at)
            .unwrap()
            .mean_test
    };
    assert!(mean("evolution", 600) > mean("random", 600), "{rows:?}");
    // Its first generation is random: level with random search at 100 queries.
    assert!(
        (mean("evolution", 100) - mean("random", 100)).abs() < 1.5,
        "{rows:?}"
    );
}
