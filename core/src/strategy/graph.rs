//! Architectures as graphs for a graph encoder (GA-NAS's): one node per decision of the
//! space, joined as the space's [`SearchSpace::decision_graph`] says, each node labelled by
//! its choice and its place.
//!
//! The encoder propagates along the graph before it learns (SIGN, Frasca et al. 2020): each
//! node's features are its own label, the mean label of its in- and out-neighbours, and of
//! theirs (two hops), so one linear layer over the nodes, a ReLU and a mean over each graph's
//! nodes make the embedding. With the propagation fixed it is computed once per
//! architecture outside the tape, and the learned part is one matrix product per batch
//! instead of one per hop.

use hwnas_kernels::{Activation, Tape, Tensor, Var};

use super::nets::Mlp;
use crate::space::{Arch, SearchSpace};

/// A space's decisions as a graph, and the features its encoder reads.
#[derive(Debug, Clone)]
pub struct DecisionGraph {
    nodes: usize,
    max_options: usize,
    incoming: Vec<Vec<usize>>,
    outgoing: Vec<Vec<usize>>,
}

impl DecisionGraph {
    /// The graph of `space`'s decisions.
    pub fn new(space: &dyn SearchSpace) -> Self {
        let nodes = space.decisions().len();
        let max_options = space
            .decisions()
            .iter()
            .map(|d| d.choices.len())
            .max()
            .unwrap_or(1);
        let mut incoming = vec![Vec::new(); nodes];
        let mut outgoing = vec![Vec::new(); nodes];
        for (from, to) in space.decision_graph() {
            if from < nodes && to < nodes && from != to {
                incoming[to].push(from);
                outgoing[from].push(to);
            }
        }
        DecisionGraph {
            nodes,
            max_options,
            incoming,
            outgoing,
        }
    }

    /// Nodes per graph (the space's decisions).
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The most options a decision has (the width of a choice's one-hot).
    pub fn max_options(&self) -> usize {
        self.max_options
    }

    /// Width of a node's label: its choice's one-hot and its place's.
    pub fn label_len(&self) -> usize {
        self.max_options + self.nodes
    }

    /// Width of a node's propagated features: its label and four neighbourhood means.
    pub fn width(&self) -> usize {
        5 * self.label_len()
    }

    /// The propagated node features of `archs`, `[archs * nodes, width]`, graph after graph.
    pub fn features(&self, space: &dyn SearchSpace, archs: &[&Arch]) -> Tensor {
        let rows: Vec<Vec<f32>> = archs.iter().map(|a| self.rows(space, a)).collect();
        self.stack(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// One architecture's propagated node features, `nodes * width` values: what
    /// [`DecisionGraph::features`] stacks, for callers that reuse them across batches.
    /// A decision that does not change the network (a skipped block's kernel) has no choice.
    pub fn rows(&self, space: &dyn SearchSpace, arch: &Arch) -> Vec<f32> {
        let (n, label) = (self.nodes, self.label_len());
        let mean_of = |labels: &[Vec<f32>], of: &[usize]| -> Vec<f32> {
            let mut mean = vec![0.0; label];
            for &u in of {
                for (m, v) in mean.iter_mut().zip(&labels[u]) {
                    *m += v / of.len() as f32;
                }
            }
            mean
        };
        let active = space.active(arch);
        let labels: Vec<Vec<f32>> = (0..n)
            .map(|v| {
                let mut l = vec![0.0; label];
                if active.get(v).copied().unwrap_or(true) {
                    l[usize::from(arch.0[v])] = 1.0;
                }
                l[self.max_options + v] = 1.0;
                l
            })
            .collect();
        let ins: Vec<Vec<f32>> = (0..n)
            .map(|v| mean_of(&labels, &self.incoming[v]))
            .collect();
        let outs: Vec<Vec<f32>> = (0..n)
            .map(|v| mean_of(&labels, &self.outgoing[v]))
            .collect();
        let mut data = Vec::with_capacity(n * self.width());
        for v in 0..n {
            data.extend_from_slice(&labels[v]);
            data.extend_from_slice(&ins[v]);
            data.extend_from_slice(&outs[v]);
            data.extend(mean_of(&ins, &self.incoming[v]));
            data.extend(mean_of(&outs, &self.outgoing[v]));
        }
        data
    }

    /// Architectures' [`DecisionGraph::rows`] as one `[graphs * nodes, width]` tensor.
    pub fn stack(&self, rows: &[&[f32]]) -> Tensor {
        Tensor::new(&[rows.len() * self.nodes, self.width()], rows.concat())
            .expect("one row per node")
    }

    /// The `[graphs, graphs * nodes]` matrix that averages each graph's node rows.
    pub fn pooling(&self, graphs: usize) -> Tensor {
        let n = self.nodes;
        let mut data = vec![0.0; graphs * graphs * n];
        for g in 0..graphs {
            for v in 0..n {
                data[g * graphs * n + g * n + v] = 1.0 / n as f32;
            }
        }
        Tensor::new(&[graphs, graphs * n], data).expect("pooling shape")
    }
}

/// A graph encoder: a linear layer over the propagated node features, a ReLU, the mean over
/// each graph's nodes, and an MLP (`[hidden, ..., out]`) on that mean.
#[derive(Debug, Clone)]
pub struct GraphEncoder {
    /// The node layer `[width, hidden]`.
    pub nodes: Mlp,
    /// The layers after the pooling.
    pub head: Mlp,
}

impl GraphEncoder {
    /// An encoder for `graph` with `hidden` units per node and `head` widths after it
    /// (the first of which is `hidden`).
    pub fn new(graph: &DecisionGraph, hidden: usize, head: &[usize], lr: f32, seed: u64) -> Self {
        GraphEncoder {
            nodes: Mlp::new(&[graph.width(), hidden], lr, seed),
            head: Mlp::new(head, lr, seed.wrapping_add(1)),
        }
    }

    /// The encoder's parameters on a tape: node layer, head.
    pub fn on_tape(&self, tape: &mut Tape<'_>) -> [Vec<(Var, Var)>; 2] {
        [self.nodes.on_tape(tape), self.head.on_tape(tape)]
    }

    /// The output for `graphs` graphs whose features (from [`DecisionGraph::features`])
    /// and pooling matrix are on the tape.
    pub fn forward(
        tape: &mut Tape<'_>,
        params: &[Vec<(Var, Var)>; 2],
        features: Var,
        pooling: Var,
    ) -> Var {
        let h = Mlp::forward(tape, &params[0], features);
        let h = tape.activation(h, Activation::Relu).expect("relu");
        let pooled = tape.matmul(pooling, h).expect("pooling shape");
        Mlp::forward(tape, &params[1], pooled)
    }

    /// The gradients the tape holds, for [`GraphEncoder::apply`].
    pub fn gradients(&self, tape: &Tape<'_>, params: &[Vec<(Var, Var)>; 2]) -> [Vec<Tensor>; 2] {
        [
            self.nodes.gradients(tape, &params[0]),
            self.head.gradients(tape, &params[1]),
        ]
    }

    /// One Adam step of both parts.
    pub fn apply(&mut self, gradients: &[Vec<Tensor>; 2]) {
        self.nodes.apply(&gradients[0]);
        self.head.apply(&gradients[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{DartsSpace, Nb201Space, OfaSpace};
    use hwnas_kernels::Backend;

    #[test]
    fn the_cell_graph_joins_edges_that_meet_at_a_node() {
        let space = Nb201Space::new();
        let graph = DecisionGraph::new(&space);
        // Edge 1<-0 (index 0) feeds 2<-1 (2) and 3<-1 (4); 2<-0 (1) and 2<-1 feed 3<-2 (5).
        assert_eq!(graph.outgoing[0], [2, 4]);
        assert_eq!(graph.incoming[5], [1, 2]);
        assert!(graph.incoming[0].is_empty());
    }

    #[test]
    fn features_hold_each_node_its_choice_place_and_neighbourhood() {
        let space = Nb201Space::new();
        let graph = DecisionGraph::new(&space);
        let arch = Arch(vec![3, 1, 2, 0, 4, 3]);
        let features = graph.features(&space, &[&arch]);
        assert_eq!(features.shape(), &[6, graph.width()]);
        let label = graph.label_len();
        let row = |v: usize| &features.data()[v * graph.width()..(v + 1) * graph.width()];
        // Node 2 (edge 2<-1): choice 2, place 2; its one in-neighbour is node 0 (choice 3).
        assert_eq!(row(2)[2], 1.0);
        assert_eq!(row(2)[graph.max_options() + 2], 1.0);
        assert_eq!(row(2)[label + 3], 1.0);
        // Every space's graph has one row per decision and pools to one row per graph.
        for space in [
            Box::new(OfaSpace::default()) as Box<dyn SearchSpace>,
            Box::new(DartsSpace::new()),
        ] {
            let graph = DecisionGraph::new(space.as_ref());
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
            let archs = [space.sample(&mut rng), space.sample(&mut rng)];
            let refs: Vec<&Arch> = archs.iter().collect();
            let f = graph.features(space.as_ref(), &refs);
            assert_eq!(f.shape(), &[2 * graph.nodes(), graph.width()]);
            let pooled = hwnas_kernels::Cpu
                .matmul(&graph.pooling(2), &f)
                .expect("shapes agree");
            assert_eq!(pooled.shape(), &[2, graph.width()]);
        }
    }
}
