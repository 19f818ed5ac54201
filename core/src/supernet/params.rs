//! A supernet's parameters by name, and their binding to one step's tape: a parameter
//! becomes a tape leaf the first time the forward pass asks for it, so a sparse step (only
//! sampled paths run) never touches, differentiates or stores the others.

use std::collections::HashMap;

use hwnas_kernels::{Tape, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Named parameter tensors in creation order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamStore {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    /// The values, where the last optimiser step left them (on the device for the wgpu
    /// backend); saved as plain value lists.
    #[serde(with = "hwnas_kernels::tensor::flat_values")]
    values: Vec<Tensor>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// Adds a He-normal parameter (`std = sqrt(2 / fan_in)`), drawn from `rng`.
    pub fn add_he(&mut self, name: String, shape: &[usize], fan_in: usize, rng: &mut ChaCha8Rng) {
        let std = (2.0 / fan_in.max(1) as f32).sqrt();
        let data = (0..shape.iter().product::<usize>())
            .map(|_| std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng))
            .collect();
        self.add(name, shape, data);
    }

    /// Adds a parameter with these values.
    pub fn add(&mut self, name: String, shape: &[usize], data: Vec<f32>) {
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        self.shapes.push(shape.to_vec());
        // Kept flat; shaped when read (a mismatch fails there, as after deserialising).
        let len = data.len();
        self.values
            .push(Tensor::new(&[len], data).expect("a flat shape fits any values"));
    }

    /// Rebuilds the name index (after deserialising).
    pub fn reindex(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of scalar parameters.
    pub fn scalars(&self) -> usize {
        self.values.iter().map(Tensor::len).sum()
    }

    /// The position of a parameter.
    pub fn position(&self, name: &str) -> Result<usize> {
        self.index.get(name).copied().ok_or_else(|| Error::Setting {
            name: "supernet".into(),
            problem: format!("no parameter named `{name}`"),
        })
    }

    /// A parameter's value.
    pub fn tensor(&self, i: usize) -> Tensor {
        let t = self.values[i].clone();
        match t.shape() == self.shapes[i].as_slice() {
            true => t,
            // Added and deserialised values are flat.
            false => t
                .reshape(&self.shapes[i])
                .expect("stored shapes agree with their values"),
        }
    }

    /// A parameter's value by name.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        Ok(self.tensor(self.position(name)?))
    }

    /// Names in creation order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every parameter as tensors (for an optimiser step).
    pub fn tensors(&self) -> Vec<Tensor> {
        (0..self.len()).map(|i| self.tensor(i)).collect()
    }

    /// Takes every value out, for an optimiser step to update in place without a copy
    /// (put them back with [`ParamStore::set_all`]).
    pub fn take_all(&mut self) -> Vec<Tensor> {
        std::mem::take(&mut self.values)
    }

    /// Replaces every value, one per parameter in order (after an optimiser step).
    pub fn set_all(&mut self, tensors: Vec<Tensor>) {
        debug_assert_eq!(tensors.len(), self.names.len(), "one value per parameter");
        self.values = tensors;
    }

    /// A seeded random-number generator for initialisation.
    pub fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }
}

/// One step's view of the parameters on a tape.
pub struct Binding<'s> {
    store: &'s ParamStore,
    bound: HashMap<usize, Var>,
    needs_grad: bool,
}

impl<'s> Binding<'s> {
    /// Binds `store`; `needs_grad` says whether the step differentiates the weights.
    pub fn new(store: &'s ParamStore, needs_grad: bool) -> Self {
        Binding {
            store,
            bound: HashMap::new(),
            needs_grad,
        }
    }

    /// The tape variable of a parameter, created on first use.
    pub fn param(&mut self, tape: &mut Tape<'_>, name: &str) -> Result<Var> {
        let i = self.store.position(name)?;
        if let Some(v) = self.bound.get(&i) {
            return Ok(*v);
        }
        let v = tape.leaf(self.store.tensor(i), self.needs_grad);
        self.bound.insert(i, v);
        Ok(v)
    }

    /// The gradient of every parameter after the tape's backward pass: zeros for those the
    /// step did not use.
    pub fn gradients(&self, tape: &Tape<'_>) -> Result<Vec<Tensor>> {
        (0..self.store.len())
            .map(|i| match self.bound.get(&i).and_then(|v| tape.grad(*v)) {
                Some(g) => Ok(g.clone()),
                None => Ok(tape.backend().zeros(&self.store.shapes[i])?),
            })
            .collect()
    }

    /// How many parameter tensors the step used.
    pub fn used(&self) -> usize {
        self.bound.len()
    }
}
