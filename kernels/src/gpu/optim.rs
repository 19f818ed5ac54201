//! The SGD update on the device (`sgd.wgsl`): gradient-norm clipping and the momentum rule
//! recorded into the open encoder, weights and velocity written to fresh buffers.

use super::{GpuContext, Pass, PipelineKey};
use crate::error::Result;
use crate::optim::SgdStep;
use crate::tensor::Tensor;
use crate::wgsl::{SgdParams, SgdStepValues, Shader};

fn key(entry: &'static str) -> PipelineKey {
    PipelineKey {
        shader: Shader::Sgd,
        entry,
    }
}

impl GpuContext {
    /// Zeros of `shape` on the device: a cleared buffer, nothing uploaded.
    pub fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        let buffer = self.output(shape.iter().product());
        self.resident(shape, buffer)
    }

    /// One SGD step (see [`crate::Backend::sgd_step`]): `params` and `velocity` are
    /// replaced by resident tensors.
    pub fn sgd_step(
        &self,
        step: &SgdStep,
        params: &mut [Tensor],
        grads: &[Tensor],
        velocity: &mut [Tensor],
    ) -> Result<()> {
        crate::optim::check_sgd_lengths(params, grads, velocity)?;
        let hyper = self.storage(&[SgdStepValues {
            nesterov: u32::from(step.nesterov),
            clipped: u32::from(step.max_norm.is_some()),
            learning_rate: step.learning_rate,
            momentum: step.momentum,
            weight_decay: step.weight_decay,
            max_norm: step.max_norm.unwrap_or(0.0),
            pad: [0; 2],
        }]);
        let shape = |len: usize, slot: usize| SgdParams {
            len: len as u32,
            slot: slot as u32,
            pad: [0; 2],
        };
        let grad_buffers: Vec<wgpu::Buffer> = grads.iter().map(|g| self.input(g)).collect();
        let scale = match step.max_norm {
            Some(_) => {
                let squares = self.output(grads.len());
                let uniforms: Vec<wgpu::Buffer> = (0..grads.len())
                    .map(|i| self.uniform(&shape(grads[i].len(), i)))
                    .collect();
                let passes: Vec<Pass> = grad_buffers
                    .iter()
                    .zip(&uniforms)
                    .map(|(g, u)| Pass {
                        key: key("square_sum"),
                        bindings: vec![(0, u), (2, g), (3, &squares)],
                        workgroups: (1, 1, 1),
                    })
                    .collect();
                self.record(&passes);
                let scale = self.output(1);
                let u = self.uniform(&shape(grads.len(), 0));
                self.record(&[Pass {
                    key: key("clip_scale"),
                    bindings: vec![(0, &u), (2, &squares), (3, &scale), (7, &hyper)],
                    workgroups: (1, 1, 1),
                }]);
                scale
            }
            None => self.dummy(),
        };
        for (i, g) in grad_buffers.iter().enumerate() {
            let len = params[i].len();
            let (w, vel) = (self.input(&params[i]), self.input(&velocity[i]));
            let (new_w, new_v) = (self.output(len), self.output(len));
            let u = self.uniform(&shape(len, 0));
            let bindings = vec![
                (0, &u),
                (1, &w),
                (2, g),
                (3, &new_w),
                (4, &vel),
                (5, &new_v),
                // A dummy when not clipping (the entry point does not read it then).
                (6, &scale),
                (7, &hyper),
            ];
            self.record(&[Pass {
                key: key("update"),
                bindings,
                workgroups: GpuContext::workgroups_2d(len.div_ceil(64)),
            }]);
            params[i] = self.resident(params[i].shape(), new_w)?;
            velocity[i] = self.resident(velocity[i].shape(), new_v)?;
        }
        Ok(())
    }
}
