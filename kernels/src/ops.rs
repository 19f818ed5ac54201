//! Op settings shared by the backends.

/// A 2-D convolution's settings (square kernels, symmetric padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dSpec {
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups: 1 for a dense convolution, the channel count for a depthwise one.
    pub groups: usize,
}

impl Conv2dSpec {
    /// Stride 1, no padding, no dilation, one group.
    pub const fn unit() -> Self {
        Conv2dSpec {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }

    /// Output size along one axis for an input size and kernel size.
    pub fn output_size(&self, input: usize, kernel: usize) -> Option<usize> {
        let extent = self.dilation * (kernel - 1) + 1;
        (input + 2 * self.padding)
            .checked_sub(extent)
            .map(|v| v / self.stride + 1)
    }
}

/// Element-wise activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// x * relu6(x + 3) / 6.
    HardSwish,
    /// relu6(x + 3) / 6.
    HardSigmoid,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// (e^x - e^-x) / (e^x + e^-x): bounded outputs, as for actions in [-1, 1].
    Tanh,
}

impl Activation {
    /// Every activation.
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::Relu6,
        Activation::HardSwish,
        Activation::HardSigmoid,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// The index the WGSL kernel switches on.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// f(x).
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }

    /// f'(x) (the subgradient 0 at kinks).
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            Activation::Relu => f32::from(x > 0.0),
            Activation::Relu6 => f32::from(x > 0.0 && x < 6.0),
            Activation::HardSwish => {
                if x <= -3.0 {
                    0.0
                } else if x >= 3.0 {
                    1.0
                } else {
                    (2.0 * x + 3.0) / 6.0
                }
            }
            Activation::HardSigmoid => f32::from(x > -3.0 && x < 3.0) / 6.0,
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
        }
    }
}
