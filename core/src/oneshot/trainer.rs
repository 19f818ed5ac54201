//! The supernet's weights in training: SGD with momentum and weight decay on a cosine
//! schedule, gradient clipping, running batch-norm statistics; and the scoring of a subnet
//! with inherited weights after batch-norm recalibration.

use hwnas_kernels::Backend;
use hwnas_kernels::optim::Sgd;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::images::batches::Batch;
use crate::space::Arch;
use crate::supernet::{BnMode, BnStats, Route, StepOutput, StepRequest, Supernet};

/// Settings of the weight optimiser (DARTS' defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightSchedule {
    /// Learning rate at the start of the cosine schedule.
    pub initial_lr: f32,
    /// Learning rate at its end.
    pub final_lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Gradient-norm clipping.
    pub clip: f32,
}

impl Default for WeightSchedule {
    fn default() -> Self {
        WeightSchedule {
            initial_lr: 0.025,
            final_lr: 0.001,
            momentum: 0.9,
            weight_decay: 3e-4,
            clip: 5.0,
        }
    }
}

impl WeightSchedule {
    /// NAS-Bench-201's training of each cell on its own: learning rate 0.1 annealed to 0,
    /// momentum 0.9, weight decay 5e-4 (the paper's Table 2; Nesterov aside).
    pub fn nas_bench_201() -> Self {
        WeightSchedule {
            initial_lr: 0.1,
            final_lr: 0.0,
            momentum: 0.9,
            weight_decay: 5e-4,
            clip: 5.0,
        }
    }
}

/// A supernet with its weight optimiser and batch-norm statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupernetTrainer {
    /// The supernet.
    pub net: Supernet,
    /// The weight optimiser's state.
    pub sgd: Sgd,
    /// Running batch-norm statistics.
    pub bn: BnStats,
    /// The schedule.
    pub schedule: WeightSchedule,
}

impl SupernetTrainer {
    /// A trainer for `net`.
    pub fn new(net: Supernet, schedule: WeightSchedule) -> Self {
        SupernetTrainer {
            net,
            sgd: Sgd::new(
                schedule.initial_lr,
                schedule.momentum,
                false,
                schedule.weight_decay,
            ),
            bn: BnStats::default(),
            schedule,
        }
    }

    /// One SGD step of the weights on `batch` through `routes`; `progress` in `[0, 1]`
    /// sets the cosine learning rate.
    pub fn train_weights(
        &mut self,
        backend: &dyn Backend,
        batch: &Batch,
        routes: &[Route],
        progress: f32,
    ) -> Result<StepOutput> {
        let mut out = self.net.step(
            backend,
            batch,
            &StepRequest {
                routes,
                bn: BnMode::Batch,
                weight_grads: true,
                route_grads: false,
                sample_weights: None,
            },
        )?;
        let s = self.schedule;
        self.sgd.learning_rate = s.final_lr
            + 0.5 * (s.initial_lr - s.final_lr) * (1.0 + (std::f32::consts::PI * progress).cos());
        let grads = std::mem::take(&mut out.weight_grads);
        // Taken out (not copied) so the CPU updates them in place; put back whatever happens.
        let mut params = self.net.params_mut().take_all();
        let stepped = self.sgd.step_on(backend, &mut params, &grads, Some(s.clip));
        self.net.params_mut().set_all(params);
        stepped?;
        self.bn
            .update_running(backend, &out.batch_stats, 0.1, batch.labels.len())?;
        Ok(out)
    }

    /// The loss on `batch` through `routes`, with the gradient with respect to each
    /// edge's route weights when `route_grads` (the weights are not changed).
    pub fn probe(
        &self,
        backend: &dyn Backend,
        batch: &Batch,
        routes: &[Route],
        route_grads: bool,
    ) -> Result<StepOutput> {
        self.net.step(
            backend,
            batch,
            &StepRequest {
                routes,
                bn: BnMode::Batch,
                weight_grads: false,
                route_grads,
                sample_weights: None,
            },
        )
    }

    /// [`SupernetTrainer::probe`] of the loss `(1/N) sum_i weights[i] CE_i` (UNAS's
    /// per-sample generalisation gap), with the route weights' gradients.
    pub fn probe_weighted(
        &self,
        backend: &dyn Backend,
        batch: &Batch,
        routes: &[Route],
        weights: &[f32],
    ) -> Result<StepOutput> {
        self.net.step(
            backend,
            batch,
            &StepRequest {
                routes,
                bn: BnMode::Batch,
                weight_grads: false,
                route_grads: true,
                sample_weights: Some(weights),
            },
        )
    }

    /// The route weights' gradients of two batches' losses, each image's cross-entropy
    /// weighted by `weigh(first_losses, second_losses) -> (first_weights, second_weights)`
    /// (UNAS pairs a training and a validation batch and weighs each image by the sign of
    /// their losses' difference). Both forward passes run before either backward pass, so
    /// each batch goes forward once, where [`Self::probe`] then
    /// [`Self::probe_weighted`] would take two; the two tapes are held at once.
    pub fn probe_paired_weighted(
        &self,
        backend: &dyn Backend,
        (first, second): (&Batch, &Batch),
        routes: &[Route],
        weigh: impl FnOnce(&[f32], &[f32]) -> (Vec<f32>, Vec<f32>),
    ) -> Result<(StepOutput, StepOutput)> {
        let request = StepRequest {
            routes,
            bn: BnMode::Batch,
            weight_grads: false,
            route_grads: true,
            sample_weights: None,
        };
        let a = self.net.begin_step(backend, first, &request)?;
        let b = self.net.begin_step(backend, second, &request)?;
        let (la, lb) = crate::supernet::PendingStep::sample_losses_of_both(&a, &b)?;
        let (wa, wb) = weigh(&la, &lb);
        for (name, batch, w) in [("first", first, &wa), ("second", second, &wb)] {
            if w.len() != batch.labels.len() {
                return Err(crate::error::Error::Setting {
                    name: "sample weights".into(),
                    problem: format!(
                        "{} weights for the {name} batch's {} images",
                        w.len(),
                        batch.labels.len()
                    ),
                });
            }
        }
        Ok((a.finish(Some(&wa))?, b.finish(Some(&wb))?))
    }

    /// The batch-norm statistics of the subnet `arch` with inherited weights, re-estimated
    /// on `batches` (its own, which differ from the supernet's running ones).
    pub fn recalibrate(
        &self,
        backend: &dyn Backend,
        arch: &Arch,
        batches: &[Batch],
    ) -> Result<BnStats> {
        let routes = self.net.fixed_routes(arch);
        let mut stats = Vec::new();
        for batch in batches {
            stats.push(self.probe(backend, batch, &routes, false)?.batch_stats);
        }
        Ok(BnStats::average(&stats))
    }

    /// Accuracy (percent) and mean loss of the subnet `arch` with inherited weights on
    /// `eval`, after re-estimating its batch-norm statistics on `recalibration` batches.
    pub fn evaluate(
        &self,
        backend: &dyn Backend,
        arch: &Arch,
        recalibration: &[Batch],
        eval: &[Batch],
    ) -> Result<(f64, f64)> {
        let routes = self.net.fixed_routes(arch);
        let stats = self
            .recalibrate(backend, arch, recalibration)?
            .to_device(backend)?;
        let (mut correct, mut count, mut loss) = (0usize, 0usize, 0.0f64);
        for batch in eval {
            let out = self.net.step(
                backend,
                batch,
                &StepRequest {
                    routes: &routes,
                    bn: BnMode::Fixed(&stats),
                    weight_grads: false,
                    route_grads: false,
                    sample_weights: None,
                },
            )?;
            correct += out.correct;
            count += batch.labels.len();
            loss += f64::from(out.loss) * batch.labels.len() as f64;
        }
        let count = count.max(1) as f64;
        Ok((100.0 * correct as f64 / count, loss / count))
    }
}
