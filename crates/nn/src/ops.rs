//! The routines every convolution and matrix product of the models goes through.
//!
//! A convolution appears in an HVP as the primal and the two tangent terms of the bilinear
//! rule, and its backward dominates the CPU cost, so all of them are routed here, with
//! ReLU. On the CPU, f32 and f64 tensors run saddlescope's custom ops (`cpu_ops`:
//! im2col/col2im + GEMM convolutions, the two tangent terms as one stacked convolution; a
//! GEMM whose backward skips constant operands; ReLU with a one-pass derivative), each
//! differentiable as often as an HVP needs (the plain ops to every order); other devices
//! (CUDA) and dtypes, or a process that chose [`CpuOps::Candle`], use candle's own
//! operations. That choice is made in one place, [`uses_cpu_ops`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use candle_core::{DType, DeviceLocation, Result, Tensor};

/// Which implementation runs CPU convolutions and matrix products (and their gradients)
/// in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuOps {
    /// saddlescope's custom ops (the default): GEMM-based convolutions parallel over
    /// samples, products that skip the gradients of constants; bit-identical results for
    /// any thread count.
    #[default]
    Saddlescope,
    /// candle's `conv2d` / `conv_transpose2d` / `matmul`, kept for before/after benchmarks.
    Candle,
}

static USE_CANDLE: AtomicBool = AtomicBool::new(false);

/// Chooses the CPU operations for the whole process (for benchmarks: both compute the same
/// functions up to rounding). Set it before building graphs: a backward pass runs the
/// gradient ops of whichever implementation built its forward graph.
pub fn set_cpu_ops(choice: CpuOps) {
    USE_CANDLE.store(choice == CpuOps::Candle, Ordering::Relaxed);
}

/// The CPU operations in use ([`set_cpu_ops`]).
pub fn cpu_ops() -> CpuOps {
    if USE_CANDLE.load(Ordering::Relaxed) {
        CpuOps::Candle
    } else {
        CpuOps::Saddlescope
    }
}

/// Whether saddlescope's CPU kernels (the custom ops, the linearized HVP engine) can run on
/// tensors of this device and dtype: on the CPU, in f32 or f64. Everything on a GPU runs
/// candle's kernels (ours have no GPU code), as do other dtypes.
pub(crate) fn cpu_kernels_apply(device: DeviceLocation, dtype: DType) -> bool {
    device == DeviceLocation::Cpu && matches!(dtype, DType::F32 | DType::F64)
}

/// Whether an op on tensors of this device and dtype runs the custom CPU ops rather than
/// candle's: where [`cpu_kernels_apply`], unless switched off by [`CpuOps::Candle`].
fn uses_cpu_ops(device: DeviceLocation, dtype: DType, choice: CpuOps) -> bool {
    cpu_kernels_apply(device, dtype) && choice == CpuOps::Saddlescope
}

/// Whether `t` goes to the custom ops ([`uses_cpu_ops`] with the process's choice).
fn custom(t: &Tensor) -> bool {
    uses_cpu_ops(t.device().location(), t.dtype(), cpu_ops())
}

/// Whether two independent halves of work on `t` of `macs` multiply-adds each should run
/// side by side on rayon's threads: large enough, and on the CPU (on a GPU both would
/// queue on the same stream, so a second thread only adds a hand-off).
pub(crate) fn run_side_by_side(t: &Tensor, macs: usize) -> bool {
    t.device().is_cpu() && crate::cpu_ops::gemm::worth_splitting(macs)
}

/// `y = conv2d(x, k)` for `x: (N, C_in, H, W)`, `k: (C_out, C_in, kh, kw)`, zero padding
/// `padding` on each side, stride `stride`, no dilation, no groups; output
/// `(N, C_out, (H + 2p − kh)/s + 1, (W + 2p − kw)/s + 1)`. Bilinear in `(x, k)`.
pub(crate) fn conv2d(x: &Tensor, kernel: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if custom(x) {
        crate::cpu_ops::conv::conv2d(x, kernel, padding, stride)
    } else {
        x.conv2d(kernel, padding, stride, 1, 1)
    }
}

/// `conv2d(x, k) + z` for a per-output-channel shift `z: (C_out,)` (an eval-mode batch
/// norm folded into the convolution). On the CPU the shift is the GEMM's starting value, so
/// the sum costs no pass over the output.
pub(crate) fn conv2d_add(
    x: &Tensor,
    kernel: &Tensor,
    z: &Tensor,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    if custom(x) {
        return crate::cpu_ops::conv::conv2d_add(x, kernel, z, padding, stride);
    }
    conv2d(x, kernel, padding, stride)?.broadcast_add(&z.reshape((1, z.elem_count(), 1, 1))?)
}

/// `conv2d(ẋ, k) + conv2d(x, k̇) + ż`: the tangent of `conv2d(x, k) (+ z)` when the input
/// and the kernel both carry tangents (`ż`: an optional per-channel shift tangent
/// `(C_out,)`). On the CPU one stacked convolution whose stacked input is not kept for
/// the backward pass.
pub(crate) fn conv2d_tangent(
    x: &Tensor,
    x_dot: &Tensor,
    kernel: &Tensor,
    kernel_dot: &Tensor,
    shift_dot: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    if custom(x) {
        return crate::cpu_ops::conv::conv2d_tangent(
            x, x_dot, kernel, kernel_dot, shift_dot, padding, stride,
        );
    }
    let sum =
        conv2d(x_dot, kernel, padding, stride)?.add(&conv2d(x, kernel_dot, padding, stride)?)?;
    match shift_dot {
        Some(z) => sum.broadcast_add(&z.reshape((1, z.elem_count(), 1, 1))?),
        None => Ok(sum),
    }
}

/// `x·wᵀ` (a linear layer without bias); 2-d operands on the CPU use the custom product,
/// which returns `w`'s gradient in `w`'s layout.
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if custom(x) && x.rank() == 2 && w.rank() == 2 {
        crate::cpu_ops::matmul::matmul_t(x, w)
    } else {
        x.matmul(&w.t()?)
    }
}

/// `x·wᵀ + z` for an addend `z` of shape `(n,)` (a linear layer's bias, one per output
/// column) or of the product's shape (the other term of a bilinear tangent); on the CPU the
/// addend is the GEMM's starting value.
pub(crate) fn matmul_t_add(x: &Tensor, w: &Tensor, z: &Tensor) -> Result<Tensor> {
    if custom(x) && x.rank() == 2 && w.rank() == 2 {
        crate::cpu_ops::matmul::matmul_t_add(x, w, z)
    } else {
        x.matmul(&w.t()?)?.broadcast_add(z)
    }
}

/// `max(x, 0)`.
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    if custom(x) {
        crate::cpu_ops::relu::relu(x)
    } else {
        x.relu()
    }
}

/// `(a + b) ⊙ 1[x ≥ 0]`: the tangent of `relu(u + w)` at `x = u + w`, fused on the CPU
/// when `a`, `b` and `x` share a shape.
pub(crate) fn relu_tangent_sum(a: &Tensor, b: &Tensor, x: &Tensor) -> Result<Tensor> {
    if custom(a) && a.shape() == b.shape() && a.shape() == x.shape() {
        crate::cpu_ops::relu::mask_mul_sum(a, b, x)
    } else {
        relu_tangent(&a.broadcast_add(b)?, x)
    }
}

/// `t ⊙ 1[x ≥ 0]`, ReLU's derivative applied to `t`, the mask a constant (candle's ReLU
/// gradient convention).
pub(crate) fn relu_tangent(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    if custom(t) {
        crate::cpu_ops::relu::mask_mul(t, x)
    } else {
        t.mul(&x.detach().ge(0.0)?.to_dtype(t.dtype())?)
    }
}

/// 2×2 average pooling with stride 2 of `(N, C, H, W)` (odd last rows and columns
/// dropped); on the CPU the custom op, whose backward is one pass.
pub(crate) fn avg_pool2(x: &Tensor) -> Result<Tensor> {
    if custom(x) {
        crate::cpu_ops::pool::avg_pool2(x)
    } else {
        x.avg_pool2d(2)
    }
}

/// `avg_pool2(relu(x))`, one pass on the CPU (exact derivatives of every order).
pub(crate) fn relu_avg_pool2(x: &Tensor) -> Result<Tensor> {
    if custom(x) {
        crate::cpu_ops::pool::relu_avg_pool2(x)
    } else {
        relu(x)?.avg_pool2d(2)
    }
}

pub(crate) use crate::cpu_ops::conv::{Block, BlockStats, ConvBn, Epilogue};

/// `epilogue(BN(conv(x, k)))` with batch statistics (convolution padding and stride as
/// given; `BN(y) = (y − μ)·(σ² + eps)^(−1/2)·γ + β` per channel), with those statistics
/// `(μ, σ²)` as `(C_out,)` tensors (biased variance, no gradient). On the CPU one fused
/// op; `None` where it does not run, and the caller composes the layer instead: other
/// devices and dtypes, [`CpuOps::Candle`], and processes that keep gradient graphs for
/// second derivatives (`CANDLE_GRAD_DO_NOT_DETACH`), since the fused backward is
/// first-order.
pub(crate) fn conv_batch_norm_train(
    (x, kernel): (&Tensor, &Tensor),
    conv: (usize, usize),
    affine: (&Tensor, &Tensor),
    eps: f64,
    epilogue: Epilogue,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    if custom(x) && !keeps_gradient_graphs() {
        crate::cpu_ops::conv::conv_batch_norm_train((x, kernel), conv, affine, eps, epilogue)
            .map(Some)
    } else {
        Ok(None)
    }
}

/// A chain of residual blocks with batch statistics as one fused first-order op
/// (`cpu_ops::conv::residual_blocks_train`): the output and each block's
/// `[(μ₁, σ²₁), (μ₂, σ²₂)]`, or `None` where [`conv_batch_norm_train`] would not fuse (the
/// caller composes the blocks then).
pub(crate) fn residual_blocks_train(
    x: &Tensor,
    blocks: &[Block],
    eps: f64,
) -> Result<Option<(Tensor, Vec<BlockStats>)>> {
    if custom(x) && !keeps_gradient_graphs() {
        crate::cpu_ops::conv::residual_blocks_train(x, blocks, eps).map(Some)
    } else {
        Ok(None)
    }
}

/// Whether candle keeps the graphs of gradients (`CANDLE_GRAD_DO_NOT_DETACH` set, not
/// empty or "0", as candle reads it), so that a gradient may be differentiated again.
fn keeps_gradient_graphs() -> bool {
    static KEEPS: OnceLock<bool> = OnceLock::new();
    *KEEPS.get_or_init(|| {
        std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0")
    })
}

/// `a·b`; 2-d operands on the CPU use the custom product, anything else candle's matmul.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if custom(a) && a.rank() == 2 && b.rank() == 2 {
        crate::cpu_ops::matmul::matmul(a, b)
    } else {
        a.matmul(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: DeviceLocation = DeviceLocation::Cuda { gpu_id: 0 };

    #[test]
    fn cpu_kernels_apply_on_the_cpu_in_f32_and_f64_only() {
        assert!(cpu_kernels_apply(DeviceLocation::Cpu, DType::F32));
        assert!(cpu_kernels_apply(DeviceLocation::Cpu, DType::F64));
        assert!(!cpu_kernels_apply(DeviceLocation::Cpu, DType::BF16));
        assert!(!cpu_kernels_apply(GPU, DType::F32));
        assert!(!cpu_kernels_apply(GPU, DType::F64));
    }

    #[test]
    fn custom_ops_run_on_the_cpu_in_f32_and_f64() {
        for dtype in [DType::F32, DType::F64] {
            assert!(uses_cpu_ops(
                DeviceLocation::Cpu,
                dtype,
                CpuOps::Saddlescope
            ));
        }
    }

    #[test]
    fn a_gpu_always_runs_candles_kernels() {
        for dtype in [DType::F32, DType::F64, DType::BF16] {
            for choice in [CpuOps::Saddlescope, CpuOps::Candle] {
                assert!(!uses_cpu_ops(GPU, dtype, choice), "{dtype:?} {choice:?}");
            }
        }
        assert!(!uses_cpu_ops(
            DeviceLocation::Metal { gpu_id: 0 },
            DType::F32,
            CpuOps::Saddlescope
        ));
    }

    #[test]
    fn other_dtypes_and_the_candle_choice_run_candles_ops_on_the_cpu() {
        for dtype in [DType::BF16, DType::F16, DType::U32] {
            assert!(!uses_cpu_ops(
                DeviceLocation::Cpu,
                dtype,
                CpuOps::Saddlescope
            ));
        }
        assert!(!uses_cpu_ops(
            DeviceLocation::Cpu,
            DType::F32,
            CpuOps::Candle
        ));
    }

    #[test]
    fn only_large_cpu_work_runs_side_by_side() {
        let x = Tensor::zeros(1, DType::F32, &candle_core::Device::Cpu).unwrap();
        let large = crate::cpu_ops::gemm::PARALLEL_MIN_MACS;
        assert!(!run_side_by_side(&x, large - 1));
        assert_eq!(
            run_side_by_side(&x, large),
            rayon::current_num_threads() > 1
        );
    }
}
