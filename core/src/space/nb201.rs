//! The NAS-Bench-201 cell space: a 4-node cell whose 6 edges each carry one of 5 operations,
//! 15,625 cells; text in the NAS-Bench-201 API's format
//! `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|`.

use super::{Arch, Decision, SearchSpace};
use crate::error::{Error, Result, excerpt};

/// The five candidate operations, in NAS-Bench-201's order.
pub const OPS: [&str; 5] = [
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
];

/// The edges as (to, from) node pairs, in the order of the text format.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// The NAS-Bench-201 space.
#[derive(Debug, Clone)]
pub struct Nb201Space {
    decisions: Vec<Decision>,
}

impl Default for Nb201Space {
    fn default() -> Self {
        Self::new()
    }
}

impl Nb201Space {
    /// The space of 6 edges x 5 operations.
    pub fn new() -> Self {
        Nb201Space {
            decisions: EDGES
                .iter()
                .map(|(to, from)| Decision::new(format!("edge {to}<-{from}"), OPS))
                .collect(),
        }
    }

    /// The operation name on each edge, in [`EDGES`] order.
    pub fn ops<'a>(&self, arch: &'a Arch) -> impl Iterator<Item = &'static str> + 'a {
        arch.0.iter().map(|&op| OPS[usize::from(op)])
    }
}

const NONE: u8 = 0;
const SKIP: u8 = 1;
const AVG_POOL: u8 = 4;

impl SearchSpace for Nb201Space {
    /// The line graph of the cell: edge `j <- i` feeds every edge `k <- j`.
    fn decision_graph(&self) -> Vec<(usize, usize)> {
        let mut edges = Vec::new();
        for (a, &(to_a, _)) in EDGES.iter().enumerate() {
            for (b, &(_, from_b)) in EDGES.iter().enumerate() {
                if to_a == from_b {
                    edges.push((a, b));
                }
            }
        }
        edges
    }

    fn name(&self) -> &'static str {
        "nb201"
    }

    fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    fn format(&self, arch: &Arch) -> String {
        let mut text = String::from("|");
        for (i, ((_, from), op)) in EDGES.iter().zip(self.ops(arch)).enumerate() {
            text.push_str(op);
            text.push('~');
            text.push_str(&from.to_string());
            text.push('|');
            if i == 0 || i == 2 {
                text.push_str("+|");
            }
        }
        text
    }

    fn parse(&self, text: &str) -> Result<Arch> {
        let error = |problem: String| Error::Parse {
            space: "nb201",
            input: excerpt(text),
            problem,
        };
        let trimmed = text.trim();
        let nodes: Vec<&str> = trimmed.split('+').collect();
        if nodes.len() != 3 {
            return Err(error(format!(
                "expected 3 nodes separated by `+`, found {}; e.g. `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|`",
                nodes.len()
            )));
        }
        let mut choices = Vec::with_capacity(6);
        for (node_index, node) in nodes.iter().enumerate() {
            let node_no = node_index + 1;
            let inner = node
                .strip_prefix('|')
                .and_then(|n| n.strip_suffix('|'))
                .ok_or_else(|| {
                    error(format!(
                        "node {node_no} `{node}` must start and end with `|`"
                    ))
                })?;
            let edges: Vec<&str> = inner.split('|').collect();
            if edges.len() != node_no {
                return Err(error(format!(
                    "node {node_no} needs {node_no} input edge(s), found {} in `{node}`",
                    edges.len()
                )));
            }
            for (from, edge) in edges.iter().enumerate() {
                let (op, source) = edge
                    .split_once('~')
                    .ok_or_else(|| error(format!("edge `{edge}` must be `OP~INPUT`")))?;
                let op_index = OPS.iter().position(|&o| o == op).ok_or_else(|| {
                    error(format!(
                        "unknown operation `{op}`; allowed: {}",
                        OPS.join(", ")
                    ))
                })?;
                if source != from.to_string() {
                    return Err(error(format!(
                        "edge `{edge}` of node {node_no} must come from node {from}, found `{source}`"
                    )));
                }
                choices.push(op_index as u8);
            }
        }
        Ok(Arch(choices))
    }

    /// Edges into nodes that never reach the output are dead; skip and pooling edges out of
    /// nodes the input never reaches carry zeros. Both become `none`, repeatedly, until
    /// nothing changes. (A convolution of zeros is not zero after batch norm's shift, so those
    /// edges are kept.)
    fn canonical(&self, arch: &Arch) -> Arch {
        let mut current = arch.clone();
        loop {
            let next = prune_once(&current);
            if next == current {
                return current;
            }
            current = next;
        }
    }
}

fn prune_once(arch: &Arch) -> Arch {
    let live = |op: u8| op != NONE;
    let is_conv = |op: u8| op != NONE && op != SKIP && op != AVG_POOL;
    // A node's output is non-zero when a live edge brings it a non-zero input, or a
    // convolution (whose batch norm shifts even zeros).
    let mut nonzero = [true, false, false, false];
    for (e, &(to, from)) in EDGES.iter().enumerate() {
        let op = arch.0[e];
        if live(op) && (nonzero[from] || is_conv(op)) {
            nonzero[to] = true;
        }
    }
    let mut useful = [false, false, false, true];
    for (e, &(to, from)) in EDGES.iter().enumerate().rev() {
        if live(arch.0[e]) && useful[to] {
            useful[from] = true;
        }
    }
    let mut out = arch.clone();
    for (e, &(to, from)) in EDGES.iter().enumerate() {
        let op = arch.0[e];
        let carries_zeros = !nonzero[from] && (op == SKIP || op == AVG_POOL);
        if !useful[to] || carries_zeros {
            out.0[e] = NONE;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_the_api() {
        let space = Nb201Space::new();
        let arch = Arch(vec![3, 0, 1, 2, 4, 1]);
        let text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|";
        assert_eq!(space.format(&arch), text);
        assert_eq!(space.parse(text).unwrap(), arch);
    }

    #[test]
    fn every_cell_round_trips() {
        let space = Nb201Space::new();
        for index in 0..5usize.pow(6) {
            let arch = Arch(
                (0..6)
                    .map(|e| ((index / 5usize.pow(e)) % 5) as u8)
                    .collect(),
            );
            assert_eq!(space.parse(&space.format(&arch)).unwrap(), arch);
        }
    }

    #[test]
    fn parse_errors_name_the_token_and_the_choices() {
        let space = Nb201Space::new();
        let error = space
            .parse("|conv_9x9~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`conv_9x9`"), "{error}");
        assert!(error.contains("nor_conv_3x3"), "{error}");
        let error = space.parse("|none~0|").unwrap_err().to_string();
        assert!(error.contains("3 nodes"), "{error}");
        let error = space
            .parse("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|")
            .unwrap_err()
            .to_string();
        assert!(error.contains("from node 0"), "{error}");
    }

    #[test]
    fn canonical_removes_dead_edges_only() {
        let space = Nb201Space::new();
        // Node 1 feeds nothing (edges 1->2 and 1->3 are none): edge 1<-0 is dead.
        let a = space
            .parse(
                "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
            )
            .unwrap();
        let b = space
            .parse(
                "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
            )
            .unwrap();
        assert_eq!(space.canonical(&a), space.canonical(&b));
        assert_eq!(space.canonical_hash(&a), space.canonical_hash(&b));
        // A different live op is a different network.
        let c = space
            .parse(
                "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|",
            )
            .unwrap();
        assert_ne!(space.canonical_hash(&a), space.canonical_hash(&c));
    }
}
