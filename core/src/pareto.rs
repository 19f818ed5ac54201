//! The accuracy-latency Pareto front of evaluated architectures.

use crate::history::Record;

/// The records not dominated in (lower latency, higher accuracy), by increasing latency.
/// Records without a latency are left out; of equal latencies the more accurate is kept.
pub fn pareto_front(records: &[Record]) -> Vec<&Record> {
    let mut sorted: Vec<(&Record, f64)> = records
        .iter()
        .filter_map(|r| r.latency_ms.map(|l| (r, l)))
        .collect();
    sorted.sort_by(|(a, la), (b, lb)| la.total_cmp(lb).then(b.accuracy.total_cmp(&a.accuracy)));
    let mut front: Vec<&Record> = Vec::new();
    for (r, _) in sorted {
        if front.last().is_none_or(|last| r.accuracy > last.accuracy) {
            front.push(r);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Arch;

    fn record(query: usize, accuracy: f64, latency_ms: Option<f64>) -> Record {
        Record {
            query,
            arch: Arch(vec![query as u8]),
            arch_text: query.to_string(),
            accuracy,
            test_accuracy: None,
            latency_ms,
            reward: accuracy,
            feasible: true,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_front_keeps_only_undominated_points_by_latency() {
        let records = [
            record(1, 70.0, Some(3.0)),
            record(2, 80.0, Some(5.0)),
            record(3, 75.0, Some(6.0)), // dominated by 2
            record(4, 60.0, Some(1.0)),
            record(5, 90.0, None),      // no latency: not on the front
            record(6, 85.0, Some(5.0)), // same latency as 2, more accurate
        ];
        let front: Vec<usize> = pareto_front(&records).iter().map(|r| r.query).collect();
        assert_eq!(front, vec![4, 1, 6]);
    }
}
