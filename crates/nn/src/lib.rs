//! Models and losses for long-tailed classification on candle, each with a forward-mode
//! tangent for exact Hessian-vector products.
//!
//! - [`Model`]: MLP, a small CNN and the CIFAR ResNet-32 of the long-tail papers (Linear or
//!   LDAM's NormedLinear head), built from a [`ModelSpec`] such as `"resnet32"`, with
//!   PyTorch parameter names (`layer1.0.conv1.weight`, `bn1.running_mean`, `linear.bias`)
//!   so that reference-code checkpoints load one-to-one ([`Model::load_state`]).
//! - [`LossSpec`] → [`Loss`]: CE, LDAM, VS / logit adjustment, focal, optionally with
//!   class weights such as [`drw_weights`].
//! - [`HessianOperator`]: `H·v` of a loss's mean over a sample set on a parameter block
//!   ([`ParamSelection`]), exact, in f32 or f64, with eval-mode or batch-statistics BN.
//!
//! - [`CpuOps`]: on the CPU, convolutions, matrix products and ReLUs run saddlescope's
//!   custom ops (GEMMs over im2col or a row expansion, fused shifts, gradients only for tracked operands; exact
//!   derivatives of every order, bit-identical for any thread count); [`set_cpu_ops`]
//!   switches back to candle's own for comparisons.
//!
//! Every layer, model and loss is written once over the [`Value`] trait, implemented by a
//! plain [`candle_core::Tensor`] and by [`Dual`] (primal + tangent). The dual forward pass
//! yields `s(w) = ∇L(w)·v` as a tracked graph and candle's first-order backward of `s` is
//! `H·v` (see [`hessian`]).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, Model, ParamSelection};
//!
//! let dev = Device::Cpu;
//! let model = Model::new(&"mlp-tanh:4".parse()?, 3, [1, 2, 2], DType::F64, &dev, 0)?;
//! let x = Tensor::randn(0.0f64, 1.0, (6, 1, 2, 2), &dev)?;
//! let batch = Batch::new(x, Tensor::new(&[0u32, 1, 2, 0, 1, 2], &dev)?)?;
//! let loss = LossSpec::Ce.build(&[2, 2, 2], None)?;
//! let head = ParamSelection::with_prefixes(&model, &["linear."])?;
//! let op = HessianOperator::new(&model, vec![batch], loss, head, BnMode::Eval)?;
//! let (n, mut hv) = (op.dim(), vec![0.0; op.dim()]);
//! let mut e0 = vec![0.0; n];
//! e0[0] = 1.0;
//! op.hvp_flat(&e0, &mut hv)?;
//! assert!(hv[0] > 0.0); // CE is convex in the last layer: positive diagonal
//! # Ok::<(), saddlescope_nn::Error>(())
//! ```
#![deny(missing_docs)]

mod class_stats;
mod cpu_ops;
mod direction_block;
mod dual;
mod error;
pub mod hessian;
mod init;
mod layers;
mod linear_op;
pub mod linearized;
mod loss;
mod model;
mod models;
mod ops;
mod selection;
mod store;
mod value;

pub use class_stats::{drw_weights, ldam_margins, vs_adjustments, DRW_BETA};
pub use dual::Dual;
pub use error::{Error, Result};
pub use hessian::{Batch, HessianOperator, HvpEngine, LinearizationInfo};
pub use layers::Activation;
pub use linear_op::LinearOp;
pub use loss::{Loss, LossSpec, FOCAL_GAMMA, LDAM_MAX_M, LDAM_S, VS_GAMMA, VS_TAU};
pub use model::{BnMode, Model};
pub use models::ModelSpec;
pub use ops::{cpu_ops, set_cpu_ops, CpuOps};
pub use selection::{ParamSelection, SelectedParam};
pub use value::Value;
