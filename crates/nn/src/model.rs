//! A network with its named parameters and batch-norm buffers.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::{Cnn, Mlp, ModelSpec, ResNet};
use crate::store::{BnRun, Builder, Ctx};
use crate::value::Value;

/// PyTorch's `BatchNorm2d` default momentum.
const BN_MOMENTUM: f64 = 0.1;

/// How batch normalization behaves in a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnMode {
    /// Normalize with the running statistics (PyTorch `model.eval()`); the default for
    /// Hessians, as in PyHessian and the paper's code.
    Eval,
    /// Normalize with batch statistics and update the running statistics (momentum 0.1,
    /// unbiased batch variance), as PyTorch `model.train()`.
    Train,
    /// Normalize with batch statistics and leave the running statistics untouched (SAM's
    /// second pass, train-mode Hessians).
    BatchStats,
}

impl BnMode {
    fn run(self) -> BnRun {
        match self {
            BnMode::Eval => BnRun::Eval,
            BnMode::Train => BnRun::Batch {
                momentum: Some(BN_MOMENTUM),
            },
            BnMode::BatchStats => BnRun::Batch { momentum: None },
        }
    }
}

/// The layers of one architecture (parameter indices only; values live in [`Model`]).
#[derive(Clone, Debug)]
enum Arch {
    Mlp(Mlp),
    Cnn(Cnn),
    ResNet(ResNet),
}

/// A classifier: architecture, trainable parameters (candle [`Var`]s in a fixed order,
/// PyTorch names) and batch-norm buffers.
///
/// The forward pass is written once over [`Value`], so the same model gives logits
/// ([`Model::forward`]) and, on [`Dual`](crate::Dual) parameters, their tangents
/// ([`Model::forward_with`], used by [`hessian`](crate::hessian)).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use saddlescope_nn::{BnMode, Model, ModelSpec};
/// let model = Model::new(&"mlp:8".parse()?, 3, [1, 2, 2], DType::F64, &Device::Cpu, 7)?;
/// assert_eq!(model.param_count(), 4 * 8 + 8 + 8 * 3 + 3);
/// let x = Tensor::zeros((5, 1, 2, 2), DType::F64, &Device::Cpu)?;
/// assert_eq!(model.forward(&x, BnMode::Eval)?.dims(), &[5, 3]);
/// # Ok::<(), saddlescope_nn::Error>(())
/// ```
#[derive(Debug)]
pub struct Model {
    spec: ModelSpec,
    classes: usize,
    input: [usize; 3],
    dtype: DType,
    device: Device,
    params: Vec<(String, Var)>,
    buffers: Vec<(String, Var)>,
    arch: Arch,
}

fn config_error(reason: String) -> Error {
    Error::ModelConfig { reason }
}

fn check_widths(what: &str, widths: &[usize]) -> Result<()> {
    if widths.contains(&0) {
        return Err(config_error(format!("{what} widths {widths:?} contain 0")));
    }
    Ok(())
}

impl Model {
    /// Builds `spec` for `classes` classes and inputs of shape `input = [C, H, W]`, with
    /// seeded initial weights (a function of `seed` only; f32 and f64 models of one seed
    /// share them up to rounding).
    ///
    /// Errors: a dtype other than f32/f64, fewer than 2 classes, an empty input shape, a
    /// CNN whose pooling would leave no pixel, or an invalid ResNet depth.
    pub fn new(
        spec: &ModelSpec,
        classes: usize,
        input: [usize; 3],
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(Error::UnsupportedDtype { dtype });
        }
        if classes < 2 {
            return Err(config_error(format!("{classes} classes, need at least 2")));
        }
        if input.contains(&0) {
            return Err(config_error(format!(
                "input shape {input:?} has a zero dimension"
            )));
        }
        let mut b = Builder::new(seed, dtype, device);
        let arch = match spec {
            ModelSpec::Mlp { hidden, activation } => {
                check_widths("mlp", hidden)?;
                Arch::Mlp(Mlp::new(
                    &mut b,
                    input.iter().product(),
                    hidden,
                    classes,
                    *activation,
                )?)
            }
            ModelSpec::Cnn { widths, activation } => {
                check_widths("cnn", widths)?;
                let shrink = 1usize
                    .checked_shl(widths.len() as u32)
                    .unwrap_or(usize::MAX);
                if widths.is_empty() || input[1] < shrink || input[2] < shrink {
                    return Err(config_error(format!(
                        "cnn with {} stages needs at least one stage and inputs of at least {shrink}x{shrink} pixels, got {}x{}",
                        widths.len(),
                        input[1],
                        input[2]
                    )));
                }
                Arch::Cnn(Cnn::new(&mut b, input, widths, classes, *activation)?)
            }
            ModelSpec::ResNet { depth, normed } => {
                if *depth < 8 || (depth - 2) % 6 != 0 {
                    return Err(config_error(format!(
                        "resnet depth {depth} is not 6n+2 with n >= 1"
                    )));
                }
                Arch::ResNet(ResNet::new(
                    &mut b,
                    input[0],
                    (depth - 2) / 6,
                    classes,
                    *normed,
                )?)
            }
        };
        let (params, buffers) = b.finish();
        Ok(Self {
            spec: spec.clone(),
            classes,
            input,
            dtype,
            device: device.clone(),
            params,
            buffers,
            arch,
        })
    }

    /// Logits `(N, classes)` of `x: (N, C, H, W)` (an MLP also takes `(N, C·H·W)`).
    /// [`BnMode::Train`] updates the running statistics.
    pub fn forward(&self, x: &Tensor, bn: BnMode) -> Result<Tensor> {
        let params: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, v)| v.as_tensor().clone())
            .collect();
        self.run(&params, x, bn.run())
    }

    /// The forward pass with explicit parameter values in [`Model::trainable`] order
    /// (plain tensors, e.g. perturbed weights, or [`Dual`](crate::Dual)s carrying a
    /// direction); the model's own weights are not read. Shapes are checked.
    pub fn forward_with<V: Value>(&self, params: &[V], x: &V, bn: BnMode) -> Result<V> {
        if params.len() != self.params.len() {
            return Err(Error::ParamCount {
                expected: self.params.len(),
                got: params.len(),
            });
        }
        for (value, (name, var)) in params.iter().zip(&self.params) {
            if value.primal().dims() != var.dims() {
                return Err(Error::ParamShape {
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    got: value.primal().dims().to_vec(),
                });
            }
        }
        self.run(params, x, bn.run())
    }

    pub(crate) fn run<V: Value>(&self, params: &[V], x: &V, bn: BnRun) -> Result<V> {
        self.check_input(x.primal())?;
        let ctx = Ctx::new(params, &self.buffers, bn);
        match &self.arch {
            Arch::Mlp(m) => m.forward(&ctx, x),
            Arch::Cnn(m) => m.forward(&ctx, x),
            Arch::ResNet(m) => m.forward(&ctx, x),
        }
    }

    /// Errors unless `x` is a batch of this model's input shape and dtype.
    pub(crate) fn check_input(&self, x: &Tensor) -> Result<()> {
        if x.dtype() != self.dtype {
            return Err(Error::Dtype {
                what: "input batch",
                expected: self.dtype,
                got: x.dtype(),
            });
        }
        let [c, h, w] = self.input;
        let dims = x.dims();
        let image = dims.len() == 4 && dims[1..] == self.input;
        let flat = dims.len() == 2 && dims[1] == c * h * w && matches!(self.arch, Arch::Mlp(_));
        if (image || flat) && dims[0] > 0 {
            Ok(())
        } else {
            Err(Error::Shape {
                what: "input batch",
                expected: format!("(N >= 1, {c}, {h}, {w})"),
                got: dims.to_vec(),
            })
        }
    }

    /// Sets every batch-norm running statistic to the statistics of the batch `x` (one
    /// train-mode pass with momentum 1; variances unbiased). Random-init running stats
    /// (mean 0, variance 1) make eval-mode deep nets badly conditioned (f32 vs f64 HVPs of
    /// ResNet-32 then differ by ~3e-3); calibrated ones do not.
    pub fn calibrate_bn(&self, x: &Tensor) -> Result<()> {
        let params: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, v)| v.as_detached_tensor())
            .collect();
        self.run(
            &params,
            x,
            BnRun::Batch {
                momentum: Some(1.0),
            },
        )?;
        Ok(())
    }

    /// The trainable parameters in their fixed order, with PyTorch names.
    pub fn trainable(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The batch-norm running statistics (`*.running_mean`, `*.running_var`), not trainable.
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// Copies of every parameter then every buffer, for saving; later training does not
    /// change them.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.params
            .iter()
            .chain(&self.buffers)
            .map(|(name, var)| Ok((name.clone(), var.as_detached_tensor().copy()?)))
            .collect()
    }

    /// Loads parameters and buffers by name, converting dtype and device. Strict: fails
    /// without changing anything if a name is missing, unexpected or mis-shaped, listing
    /// all of them. PyTorch's `{bn}.num_batches_tracked` is ignored for every batch-norm
    /// layer `{bn}`. (Stripping a `module.` prefix is the caller's job.)
    pub fn load_state(&mut self, mut state: HashMap<String, Tensor>) -> Result<()> {
        let mut missing = Vec::new();
        let mut mis_shaped = Vec::new();
        let mut values = Vec::new();
        for (name, var) in self.params.iter().chain(&self.buffers) {
            match state.remove(name) {
                None => missing.push(name.clone()),
                Some(t) if t.dims() != var.dims() => {
                    mis_shaped.push((name.clone(), var.dims().to_vec(), t.dims().to_vec()))
                }
                Some(t) => values.push((var, t)),
            }
        }
        let mut unexpected: Vec<String> = state
            .into_keys()
            .filter(|name| {
                let bn_counter = name
                    .strip_suffix("num_batches_tracked")
                    .is_some_and(|prefix| {
                        self.buffers
                            .iter()
                            .any(|(b, _)| b.strip_suffix("running_mean") == Some(prefix))
                    });
                !bn_counter
            })
            .collect();
        unexpected.sort();
        if !(missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty()) {
            return Err(Error::StateMismatch {
                missing,
                unexpected,
                mis_shaped,
            });
        }
        let converted = values
            .into_iter()
            .map(|(var, t)| Ok((var, t.to_dtype(self.dtype)?.to_device(&self.device)?)))
            .collect::<Result<Vec<_>>>()?;
        for (var, t) in converted {
            var.set(&t)?;
        }
        Ok(())
    }

    /// Fails with the first parameter or buffer holding NaN or infinity, naming it.
    pub fn check_finite(&self) -> Result<()> {
        for (name, var) in self.params.iter().chain(&self.buffers) {
            let values: Vec<f64> = var
                .as_detached_tensor()
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1()?;
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFinite {
                    name: name.clone(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// A copy of the model in another dtype (f32 or f64), with its own weights.
    pub fn to_dtype(&self, dtype: DType) -> Result<Model> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(Error::UnsupportedDtype { dtype });
        }
        let convert = |list: &[(String, Var)]| -> Result<Vec<(String, Var)>> {
            list.iter()
                .map(|(name, var)| {
                    let t = var.as_detached_tensor().to_dtype(dtype)?.copy()?;
                    Ok((name.clone(), Var::from_tensor(&t)?))
                })
                .collect()
        };
        Ok(Model {
            spec: self.spec.clone(),
            classes: self.classes,
            input: self.input,
            dtype,
            device: self.device.clone(),
            params: convert(&self.params)?,
            buffers: convert(&self.buffers)?,
            arch: self.arch.clone(),
        })
    }

    /// The architecture.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Number of classes (logit width).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device holding the parameters.
    pub fn device(&self) -> &Device {
        &self.device
    }
}
