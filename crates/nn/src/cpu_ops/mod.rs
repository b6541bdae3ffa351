//! saddlescope's CPU custom ops, f32 and f64, each a candle `CustomOp` with exact
//! derivatives and results bit-identical for any number of threads; [`ops`](crate::ops)
//! routes the models' operations here.
//!
//! - [`custom`]: what every op shares (dtype dispatch, dense views, gradients only for
//!   tracked arguments);
//! - [`conv`]: convolutions as im2col/col2im around a GEMM, with their gradients and the
//!   stacked tangent convolution of an HVP;
//! - [`matmul`]: matrix products whose backward skips constant operands;
//! - [`relu`]: ReLU and its one-pass derivative map;
//! - [`batch_norm`]: train-mode batch normalization and its epilogue, forward and backward
//!   in fused passes (the kernels of the fused convolution + batch norm op in [`conv`]);
//! - [`pool`]: 2×2 average pooling and its adjoint;
//! - [`channel_sum`]: the gradient of a per-channel shift;
//! - [`gemm`]: the checked wrapper around the `gemm` crate the products run on.

pub(crate) mod batch_norm;
pub(crate) mod channel_sum;
pub(crate) mod conv;
pub(crate) mod custom;
pub(crate) mod gemm;
pub(crate) mod matmul;
pub(crate) mod pool;
pub(crate) mod relu;
#[cfg(test)]
pub(crate) mod test_util;
