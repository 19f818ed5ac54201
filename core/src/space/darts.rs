//! The DARTS cell space: a normal and a reduction cell, each with 4 intermediate nodes that
//! take 2 distinct earlier nodes (the two cell inputs count as nodes 0 and 1) through one of
//! 8 operations; printed and parsed as DARTS's
//! `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`.
//!
//! Each node is three decisions: which pair of inputs (one of C(n, 2) pairs, lowest input
//! first) and the operation on each of the two.

use super::{Arch, Decision, SearchSpace};
use crate::error::{Error, Result, excerpt};

/// The eight candidate operations, in DARTS's `PRIMITIVES` order.
pub const OPS: [&str; 8] = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
];

/// Intermediate nodes per cell.
pub const NODES: usize = 4;

/// The two cells.
pub const CELLS: [&str; 2] = ["normal", "reduce"];

/// The DARTS space.
#[derive(Debug, Clone)]
pub struct DartsSpace {
    decisions: Vec<Decision>,
}

impl Default for DartsSpace {
    fn default() -> Self {
        Self::new()
    }
}

/// The input pairs `(a, b)`, `a < b`, open to intermediate node `node` (0-based).
pub fn input_pairs(node: usize) -> Vec<(usize, usize)> {
    let inputs = node + 2;
    let mut pairs = Vec::new();
    for a in 0..inputs {
        for b in a + 1..inputs {
            pairs.push((a, b));
        }
    }
    pairs
}

/// One edge of a genotype: the operation and the node it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Index into [`OPS`].
    pub op: usize,
    /// The input node (0 and 1 are the cell's inputs).
    pub input: usize,
}

impl DartsSpace {
    /// The space of two cells of 4 nodes.
    pub fn new() -> Self {
        let mut decisions = Vec::new();
        for cell in CELLS {
            for node in 0..NODES {
                let pairs = input_pairs(node)
                    .into_iter()
                    .map(|(a, b)| format!("({a}, {b})"));
                decisions.push(Decision::new(
                    format!("{cell} node {} inputs", node + 2),
                    pairs,
                ));
                decisions.push(Decision::new(format!("{cell} node {} op a", node + 2), OPS));
                decisions.push(Decision::new(format!("{cell} node {} op b", node + 2), OPS));
            }
        }
        DartsSpace { decisions }
    }

    /// The 8 edges of cell `cell` (0 normal, 1 reduce), two per node, in genotype order.
    pub fn edges(&self, arch: &Arch, cell: usize) -> Vec<Edge> {
        let base = cell * NODES * 3;
        let mut edges = Vec::with_capacity(NODES * 2);
        for node in 0..NODES {
            let at = base + node * 3;
            let (a, b) = input_pairs(node)[usize::from(arch.0[at])];
            edges.push(Edge {
                op: usize::from(arch.0[at + 1]),
                input: a,
            });
            edges.push(Edge {
                op: usize::from(arch.0[at + 2]),
                input: b,
            });
        }
        edges
    }
}

fn format_cell(edges: &[Edge]) -> String {
    let items: Vec<String> = edges
        .iter()
        .map(|e| format!("('{}', {})", OPS[e.op], e.input))
        .collect();
    format!("[{}]", items.join(", "))
}

impl SearchSpace for DartsSpace {
    /// Per cell: a node's input choice feeds its two operations, and every node's
    /// operations feed the input choices of the nodes after it (which may read it).
    fn decision_graph(&self) -> Vec<(usize, usize)> {
        let mut edges = Vec::new();
        for cell in 0..CELLS.len() {
            let at = |node: usize, part: usize| cell * NODES * 3 + node * 3 + part;
            for node in 0..NODES {
                edges.push((at(node, 0), at(node, 1)));
                edges.push((at(node, 0), at(node, 2)));
                for later in node + 1..NODES {
                    edges.push((at(node, 1), at(later, 0)));
                    edges.push((at(node, 2), at(later, 0)));
                }
            }
        }
        edges
    }

    fn name(&self) -> &'static str {
        "darts"
    }

    fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    fn format(&self, arch: &Arch) -> String {
        format!(
            "Genotype(normal={}, normal_concat=[2, 3, 4, 5], reduce={}, reduce_concat=[2, 3, 4, 5])",
            format_cell(&self.edges(arch, 0)),
            format_cell(&self.edges(arch, 1))
        )
    }

    fn parse(&self, text: &str) -> Result<Arch> {
        let error = |problem: String| Error::Parse {
            space: "darts",
            input: excerpt(text),
            problem,
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact
            .strip_prefix("Genotype(")
            .and_then(|b| b.strip_suffix(')'))
            .ok_or_else(|| error("expected `Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`".to_string()))?;
        let mut choices = Vec::with_capacity(self.decisions.len());
        for cell in CELLS {
            let list = field(body, cell).ok_or_else(|| error(format!("missing `{cell}=[...]`")))?;
            let concat_key = format!("{cell}_concat");
            let concat = field(body, &concat_key)
                .ok_or_else(|| error(format!("missing `{concat_key}=[2, 3, 4, 5]`")))?;
            if concat != "2,3,4,5" && concat != "range(2,6)" {
                return Err(error(format!(
                    "`{concat_key}` must be [2, 3, 4, 5] (every intermediate node), found `{concat}`"
                )));
            }
            let edges = parse_edges(list).map_err(error)?;
            if edges.len() != NODES * 2 {
                return Err(error(format!(
                    "`{cell}` needs {} edges (2 per node), found {}",
                    NODES * 2,
                    edges.len()
                )));
            }
            for node in 0..NODES {
                let (mut first, mut second) = (edges[node * 2], edges[node * 2 + 1]);
                let inputs = node + 2;
                for edge in [first, second] {
                    if edge.input >= inputs {
                        return Err(error(format!(
                            "{cell} node {} reads node {}, allowed 0..{}",
                            node + 2,
                            edge.input,
                            inputs - 1
                        )));
                    }
                }
                if first.input == second.input {
                    return Err(error(format!(
                        "{cell} node {} reads node {} twice; its two inputs must differ",
                        node + 2,
                        first.input
                    )));
                }
                if first.input > second.input {
                    std::mem::swap(&mut first, &mut second);
                }
                let pair = input_pairs(node)
                    .iter()
                    .position(|&p| p == (first.input, second.input))
                    .expect("distinct inputs below the node form a listed pair");
                choices.extend([pair as u8, first.op as u8, second.op as u8]);
            }
        }
        Ok(Arch(choices))
    }
}

/// The text inside `key=[...]` (or `key=range(...)`) of a whitespace-free genotype body.
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let mut search = 0;
    while let Some(found) = body[search..].find(key) {
        let start = search + found;
        let boundary = start == 0 || matches!(body.as_bytes()[start - 1], b',' | b'(');
        let rest = &body[start + key.len()..];
        if boundary && let Some(value) = rest.strip_prefix('=') {
            if let Some(list) = value.strip_prefix('[') {
                return list.find(']').map(|end| &list[..end]);
            }
            if value.starts_with("range(") {
                return value.find(')').map(|end| &value[..=end]);
            }
        }
        search = start + key.len();
    }
    None
}

fn parse_edges(list: &str) -> Result<Vec<Edge>, String> {
    let mut edges = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let inner_start = rest
            .find('(')
            .ok_or_else(|| format!("expected `('op', input)` at `{rest}`"))?;
        let inner_end = rest[inner_start..]
            .find(')')
            .map(|e| inner_start + e)
            .ok_or_else(|| format!("unclosed `(` at `{rest}`"))?;
        let item = &rest[inner_start + 1..inner_end];
        let (op, input) = item
            .split_once(',')
            .ok_or_else(|| format!("edge `({item})` must be `('op', input)`"))?;
        let op = op.trim_matches(|c| c == '\'' || c == '"');
        let op_index = OPS
            .iter()
            .position(|&o| o == op)
            .ok_or_else(|| format!("unknown operation `{op}`; allowed: {}", OPS.join(", ")))?;
        let input: usize = input
            .parse()
            .map_err(|_| format!("input `{input}` of `{op}` is not a node number"))?;
        edges.push(Edge {
            op: op_index,
            input,
        });
        rest = rest[inner_end + 1..].trim_start_matches(',');
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

    #[test]
    fn parses_the_published_darts_v2_genotype() {
        let space = DartsSpace::new();
        let arch = space.parse(DARTS_V2).unwrap();
        space.validate(&arch).unwrap();
        let normal = space.edges(&arch, 0);
        // Node 4 listed (sep_conv_3x3, 1), (skip_connect, 0): stored lowest input first.
        assert_eq!(normal[4], Edge { op: 3, input: 0 });
        assert_eq!(normal[5], Edge { op: 4, input: 1 });
        let again = space.parse(&space.format(&arch)).unwrap();
        assert_eq!(again, arch);
    }

    #[test]
    fn random_genotypes_round_trip() {
        let space = DartsSpace::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let arch = space.sample(&mut rng);
            assert_eq!(space.parse(&space.format(&arch)).unwrap(), arch);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let space = DartsSpace::new();
        let bad_op = DARTS_V2.replacen("sep_conv_3x3", "sep_conv_9x9", 1);
        let error = space.parse(&bad_op).unwrap_err().to_string();
        assert!(
            error.contains("`sep_conv_9x9`") && error.contains("dil_conv_5x5"),
            "{error}"
        );
        let bad_input = DARTS_V2.replacen("('sep_conv_3x3', 1)", "('sep_conv_3x3', 7)", 1);
        let error = space.parse(&bad_input).unwrap_err().to_string();
        assert!(error.contains("reads node 7"), "{error}");
        let bad_concat = DARTS_V2.replacen("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3]", 1);
        let error = space.parse(&bad_concat).unwrap_err().to_string();
        assert!(error.contains("normal_concat"), "{error}");
    }
}
