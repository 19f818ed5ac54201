//! Adam for the small parameter vectors of search policies (REINFORCE's logits); networks
//! on the kernels crate use its own optimisers.

/// Adam (Kingma & Ba 2015) over a flat `f64` parameter vector.
#[derive(Debug, Clone)]
pub struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    /// Adam for `len` parameters with the usual betas (0.9, 0.999) and epsilon 1e-8.
    pub fn new(len: usize, learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    /// True for an empty parameter vector.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// One descent step on `params` along `gradient`.
    pub fn step(&mut self, params: &mut [f64], gradient: &[f64]) {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for (i, (p, g)) in params.iter_mut().zip(gradient).enumerate() {
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g;
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g * g;
            *p -= self.learning_rate * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + self.epsilon);
        }
    }
}
