//! The benchmark models and inputs: the same architectures as `bench/pytorch_reference.py`
//! (MLP 784-256-10 and the `cnn` on 1x28x28, ResNet-32 on 3x32x32), random seeded weights
//! with batch-norm running statistics calibrated on the batch, eval mode, cross-entropy.

use candle_core::{DType, Device, Tensor};
use clap::ValueEnum;
use saddlescope_nn::{Batch, Model, ModelSpec};

/// A benchmark model (`--model`): the architecture, its input shape and default batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchModel {
    /// `mlp:256` on 1x28x28 (203,530 parameters).
    Mlp,
    /// `cnn` on 1x28x28 (20,538 parameters).
    Cnn,
    /// `resnet32` on 3x32x32 (464,154 parameters).
    Resnet32,
}

impl BenchModel {
    /// The name used in `--model` and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
            Self::Resnet32 => "resnet32",
        }
    }

    /// The reference batch sizes: 512 (MLP), 128 (CNN), 32 (ResNet-32).
    pub fn default_batch(self) -> usize {
        match self {
            Self::Mlp => 512,
            Self::Cnn => 128,
            Self::Resnet32 => 32,
        }
    }

    /// Input shape `[C, H, W]`.
    pub fn input(self) -> [usize; 3] {
        match self {
            Self::Mlp | Self::Cnn => [1, 28, 28],
            Self::Resnet32 => [3, 32, 32],
        }
    }

    /// The model spec (`saddlescope train --model`).
    pub fn spec(self) -> &'static str {
        match self {
            Self::Mlp => "mlp:256",
            Self::Cnn => "cnn",
            Self::Resnet32 => "resnet32",
        }
    }

    /// The seeded model (10 classes) on `x`'s device with its BN running statistics
    /// calibrated on `x`.
    pub fn build(self, dtype: DType, x: &Tensor) -> anyhow::Result<Model> {
        let spec: ModelSpec = self.spec().parse()?;
        let model = Model::new(&spec, 10, self.input(), dtype, x.device(), 0)?;
        model.calibrate_bn(x)?;
        Ok(model)
    }
}

/// `n` seeded standard-normal inputs of `model`'s shape with labels `i mod 10`, on `device`.
pub fn random_batch(
    model: BenchModel,
    n: usize,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<Batch> {
    let [c, h, w] = model.input();
    let len = n * c * h * w;
    // A fixed xorshift sequence, uniform on [-√3, √3] (unit variance): the benchmark needs
    // reproducible inputs, not a particular distribution.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let values: Vec<f32> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * 3f32.sqrt()
        })
        .collect();
    let x = Tensor::from_vec(values, (n, c, h, w), &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)?;
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    Ok(Batch::new(x, Tensor::new(labels.as_slice(), device)?)?)
}
