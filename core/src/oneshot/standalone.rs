//! Candidates trained for real: each architecture trained on its own, from the same
//! initial weights and the same batches, for a few epochs, then scored on held-out images.
//! The slow evaluator of the classic reinforcement-learning NAS loop (MONAS, L2NAS and
//! GA-NAS on real data), and the one a cluster executor fans out.

use hwnas_kernels::Backend;

use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, Evaluator};
use crate::images::batches::Batch;
use crate::oneshot::{
    OneShotConfig, OneShotData, SupernetTrainer, WeightSchedule, scoring_batches,
};
use crate::space::Arch;
use crate::supernet::Supernet;

/// How each candidate is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSettings {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Seeds the batch order and augmentation (the same for every candidate).
    pub seed: u64,
    /// The weight optimiser.
    pub schedule: WeightSchedule,
}

/// An [`Evaluator`] that trains each architecture as a network of its own (the supernet's
/// path of that architecture, every other candidate unused) and answers its held-out
/// accuracy. Deterministic per (architecture, seed): the initial weights, the batches and
/// the kernels' order of summation are fixed, so a candidate scores the same on any worker.
pub struct TrainingEvaluator {
    initial: Supernet,
    backend: Box<dyn Backend + Send + Sync>,
    data: OneShotData,
    settings: TrainingSettings,
    recalibration: Vec<Batch>,
    eval: Vec<Batch>,
}

impl TrainingEvaluator {
    /// Trains candidates of `initial`'s space from its weights on `data.train`, scored on
    /// `data.eval` (after re-estimating batch norm on four training batches).
    pub fn new(
        initial: Supernet,
        backend: Box<dyn Backend + Send + Sync>,
        data: OneShotData,
        settings: TrainingSettings,
    ) -> Self {
        let (recalibration, eval) = scoring_batches(&data, &Self::scoring_config(&settings));
        TrainingEvaluator {
            initial,
            backend,
            data,
            settings,
            recalibration,
            eval,
        }
    }

    fn scoring_config(settings: &TrainingSettings) -> OneShotConfig {
        OneShotConfig {
            epochs: settings.epochs,
            batch_size: settings.batch_size,
            seed: settings.seed,
            eval_every: 1,
            recalibration_batches: 4,
            warmup_share: 0.0,
            finetune_share: 0.0,
        }
    }

    /// Trains `arch` and returns its trainer (the trained weights) with its held-out
    /// accuracy in percent.
    pub fn train(&self, arch: &Arch) -> Result<(SupernetTrainer, f64)> {
        let s = &self.settings;
        let mut trainer = SupernetTrainer::new(self.initial.clone(), s.schedule);
        let routes = trainer.net.fixed_routes(arch);
        let b = s.batch_size.max(1);
        let per_epoch = (self.data.train.len() / b).max(1);
        let total = (per_epoch * s.epochs.max(1)) as f32;
        for epoch in 0..s.epochs.max(1) {
            let batches = self.data.train.epoch_batches(
                b,
                s.seed,
                epoch,
                &self.data.normalisation,
                self.data.augmentation,
            );
            for (i, batch) in batches.take(per_epoch).enumerate() {
                let step = epoch * per_epoch + i;
                let out = trainer.train_weights(
                    self.backend.as_ref(),
                    &batch,
                    &routes,
                    step as f32 / total,
                )?;
                if !out.loss.is_finite() {
                    return Err(Error::Setting {
                        name: "evaluator".into(),
                        problem: format!(
                            "training the candidate diverged at step {step} (loss {}); lower the learning rate or check the images",
                            out.loss
                        ),
                    });
                }
            }
        }
        let (accuracy, _) =
            trainer.evaluate(self.backend.as_ref(), arch, &self.recalibration, &self.eval)?;
        Ok((trainer, accuracy))
    }
}

impl TrainingEvaluator {
    /// Batch-norm statistics of `arch` in `trainer` re-estimated on the scoring batches (what
    /// its held-out accuracy was measured with; what an exported network carries).
    pub fn recalibrate(
        &self,
        trainer: &SupernetTrainer,
        arch: &Arch,
    ) -> Result<crate::supernet::BnStats> {
        trainer.recalibrate(self.backend.as_ref(), arch, &self.recalibration)
    }

    /// Training images each candidate is trained on.
    pub fn train_len(&self) -> usize {
        self.data.train.len()
    }

    /// The per-channel normalisation of the training images (the network's inputs are
    /// images in [0, 1] normalised with it).
    pub fn normalisation(&self) -> &crate::images::batches::Normalisation {
        &self.data.normalisation
    }
}

impl Evaluator for TrainingEvaluator {
    fn name(&self) -> String {
        format!(
            "train:{}:{}-epochs",
            self.initial.space(),
            self.settings.epochs
        )
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        // No cost: the history must be the same whichever worker trained the candidate,
        // so the wall time is not part of the answer.
        let (_, accuracy) = self.train(arch)?;
        Ok(Evaluation {
            accuracy,
            test_accuracy: None,
            cost_seconds: 0.0,
        })
    }
}
