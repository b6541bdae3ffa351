//! Parameter registration at build time and parameter lookup at run time.
//!
//! Layers register their tensors with a [`Builder`] under PyTorch-style dotted names and
//! keep only the returned indices; a forward pass hands them a [`Ctx`] holding the
//! parameter values (plain or dual, in registration order) and the batch-norm buffers.

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::value::Value;

/// Index of a trainable parameter in the model's ordered list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParamId(usize);

/// Index of a non-trainable buffer (batch-norm running statistics).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufferId(usize);

/// Named tensors in a fixed order (parameters or buffers).
pub(crate) type NamedVars = Vec<(String, Var)>;

/// Collects named parameters and buffers, drawing initial values from one seeded stream.
pub(crate) struct Builder {
    params: NamedVars,
    buffers: NamedVars,
    rng: ChaCha8Rng,
    dtype: DType,
    device: Device,
}

impl Builder {
    /// A builder whose random initial values are a function of `seed` only (drawn in
    /// f64, then cast), so f32 and f64 models of one seed start from the same weights.
    pub(crate) fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            params: Vec::new(),
            buffers: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            dtype,
            device: device.clone(),
        }
    }

    /// The random stream for initializers.
    pub(crate) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn tensor(&self, shape: &[usize], values: Vec<f64>) -> Result<Tensor> {
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?
            .to_dtype(self.dtype)?
            .to_device(&self.device)?)
    }

    /// Registers a trainable parameter with the given initial values (row-major).
    pub(crate) fn param(
        &mut self,
        name: String,
        shape: &[usize],
        values: Vec<f64>,
    ) -> Result<ParamId> {
        let var = Var::from_tensor(&self.tensor(shape, values)?)?;
        self.params.push((name, var));
        Ok(ParamId(self.params.len() - 1))
    }

    /// Registers a buffer filled with `fill`.
    pub(crate) fn buffer(&mut self, name: String, shape: &[usize], fill: f64) -> Result<BufferId> {
        let n = shape.iter().product();
        let var = Var::from_tensor(&self.tensor(shape, vec![fill; n])?)?;
        self.buffers.push((name, var));
        Ok(BufferId(self.buffers.len() - 1))
    }

    /// The registered parameters and buffers, in registration order.
    pub(crate) fn finish(self) -> (NamedVars, NamedVars) {
        (self.params, self.buffers)
    }
}

/// How batch norm runs in one forward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BnRun {
    /// Normalize with the running statistics.
    Eval,
    /// Normalize with batch statistics; if `momentum` is set, also update the running
    /// statistics as `r ← (1 − momentum)·r + momentum·batch`.
    Batch {
        /// Update momentum, `None` to leave the buffers untouched.
        momentum: Option<f64>,
    },
}

/// What a layer sees during a forward pass.
pub(crate) struct Ctx<'a, V> {
    params: &'a [V],
    buffers: &'a [(String, Var)],
    /// Batch-norm behaviour of this pass.
    pub(crate) bn: BnRun,
}

impl<'a, V: Value> Ctx<'a, V> {
    pub(crate) fn new(params: &'a [V], buffers: &'a [(String, Var)], bn: BnRun) -> Self {
        Self {
            params,
            buffers,
            bn,
        }
    }

    /// A parameter's value (its tangent, if any, is the Hessian direction's block).
    pub(crate) fn param(&self, id: ParamId) -> &V {
        &self.params[id.0]
    }

    /// A buffer's current value, detached: statistics never receive gradients.
    pub(crate) fn buffer(&self, id: BufferId) -> Tensor {
        self.buffers[id.0].1.as_detached_tensor()
    }

    /// Overwrites a buffer in place.
    pub(crate) fn set_buffer(&self, id: BufferId, value: &Tensor) -> Result<()> {
        Ok(self.buffers[id.0].1.set(value)?)
    }
}
