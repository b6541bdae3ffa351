//! The one convolution routine every layer and tangent goes through.
//!
//! A convolution appears three times per layer in an HVP (the primal and the two tangent
//! terms of the bilinear rule) and its backward dominates the CPU cost, so all of them
//! are routed here: replacing candle's convolution (e.g. by im2col + GEMM custom ops with
//! exact derivatives) is a change to this file only.

use candle_core::{Result, Tensor};

/// `y = conv2d(x, k)` for `x: (N, C_in, H, W)`, `k: (C_out, C_in, kh, kw)`, zero padding
/// `padding` on each side, stride `stride`, no dilation, no groups; output
/// `(N, C_out, (H + 2p − kh)/s + 1, (W + 2p − kw)/s + 1)`. Bilinear in `(x, k)`.
pub(crate) fn conv2d(x: &Tensor, kernel: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    x.conv2d(kernel, padding, stride, 1, 1)
}
