//! 2×2 average pooling and its transpose on the CPU for the sweeps of a linearized HVP:
//! one pass over the data, planes in parallel (candle's CPU pooling runs single-threaded,
//! and its transpose would take an upsampling, a scaling and a padding: three passes).

use candle_core::{bail, DType, Device, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

use crate::conv_cpu::dense;

/// Planes per parallel piece.
const PLANES: usize = 64;

/// `y[p, i, j] = ¼ Σ_{a, b ∈ {0, 1}} x[p, 2i + a, 2j + b]` for `x: (B, C, H, W)` on the CPU,
/// `y: (B, C, ⌊H/2⌋, ⌊W/2⌋)` (candle's `avg_pool2d(2)`; the window summed in the same
/// order). `None` off the CPU or outside f32/f64 (the caller uses candle's op).
pub(crate) fn avg_pool2(x: &Tensor) -> Result<Option<Tensor>> {
    let (b, c, h, w) = x.dims4()?;
    let planes = (h * w, (h / 2) * (w / 2));
    let dims = [b, c, h / 2, w / 2];
    match x.dtype() {
        DType::F32 => run(x, &dims, planes, |s, d| pool::<f32>(s, d, (h, w))),
        DType::F64 => run(x, &dims, planes, |s, d| pool::<f64>(s, d, (h, w))),
        _ => Ok(None),
    }
}

/// The transpose of [`avg_pool2`] for inputs of side lengths `(h, w)`: each value spread as
/// a quarter over its window, zero in an odd last row or column.
pub(crate) fn avg_pool2_transpose(u: &Tensor, (h, w): (usize, usize)) -> Result<Option<Tensor>> {
    let (b, c, ho, wo) = u.dims4()?;
    if (ho, wo) != (h / 2, w / 2) {
        bail!("avg_pool2 transpose: ({ho}, {wo}) planes for inputs ({h}, {w})")
    }
    let planes = (ho * wo, h * w);
    let dims = [b, c, h, w];
    match u.dtype() {
        DType::F32 => run(u, &dims, planes, |s, d| spread::<f32>(s, d, (h, w))),
        DType::F64 => run(u, &dims, planes, |s, d| spread::<f64>(s, d, (h, w))),
        _ => Ok(None),
    }
}

/// Runs a plane-by-plane kernel on a CPU tensor, pieces of [`PLANES`] planes in parallel,
/// giving a tensor of shape `dims` (`None` off the CPU).
fn run<T: WithDType>(
    t: &Tensor,
    dims: &[usize],
    (plane_in, plane_out): (usize, usize),
    kernel: impl Fn(&[T], &mut [T]) + Sync,
) -> Result<Option<Tensor>> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let src = dense::<T>(cpu, layout)?;
    let mut dst = vec![T::zero(); dims.iter().product()];
    if plane_in > 0 && plane_out > 0 {
        dst.par_chunks_mut(PLANES * plane_out)
            .zip(src.par_chunks(PLANES * plane_in))
            .for_each(|(d, s)| kernel(s, d));
    }
    Ok(Some(Tensor::from_vec(dst, dims, &Device::Cpu)?))
}

fn pool<T: WithDType>(src: &[T], dst: &mut [T], (h, w): (usize, usize)) {
    let (ho, wo) = (h / 2, w / 2);
    let quarter = T::from_f64(0.25);
    for (plane, out) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(ho * wo)) {
        for i in 0..ho {
            let (top, bottom) = (&plane[2 * i * w..], &plane[(2 * i + 1) * w..]);
            for (j, o) in out[i * wo..(i + 1) * wo].iter_mut().enumerate() {
                *o = (top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]) * quarter;
            }
        }
    }
}

fn spread<T: WithDType>(src: &[T], dst: &mut [T], (h, w): (usize, usize)) {
    let (ho, wo) = (h / 2, w / 2);
    let (zero, quarter) = (T::zero(), T::from_f64(0.25));
    for (plane, out) in src.chunks_exact(ho * wo).zip(dst.chunks_exact_mut(h * w)) {
        for (r, row) in out.chunks_exact_mut(w).enumerate() {
            if r / 2 >= ho {
                row.fill(zero);
                continue;
            }
            let values = &plane[r / 2 * wo..(r / 2 + 1) * wo];
            for (pair, &v) in row.chunks_exact_mut(2).zip(values) {
                pair.fill(v * quarter);
            }
            row[2 * wo..].fill(zero);
        }
    }
}
