//! 2×2 average pooling and its transpose on the CPU for the sweeps of a linearized HVP:
//! one pass over the data, planes in parallel (candle's CPU pooling runs single-threaded,
//! and its transpose would take an upsampling, a scaling and a padding: three passes).
//!
//! Either may take a ReLU's mask `1[x ≥ 0]` on its pooled side (the `relu → avg_pool2` of
//! the CNN): the tangent `pool(1[x ≥ 0]·ẋ)` and the adjoint `1[x ≥ 0]·poolᵀ(u)` then take one
//! pass instead of two, with the same values. A mask of `N` samples serves `k·N` stacked
//! tangents (plane `p` reads the mask of plane `p mod planes(x)`).

use candle_core::{bail, DType, Device, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

use crate::cpu_ops::custom::dense;

/// Planes per parallel piece.
const PLANES: usize = 64;

/// `y[p, i, j] = ¼ Σ_{a, b ∈ {0, 1}} m·x[p, 2i + a, 2j + b]` for `x: (B, C, H, W)` on the
/// CPU, `y: (B, C, ⌊H/2⌋, ⌊W/2⌋)`, `m = 1[mask ≥ 0]` at the same place (1 without a mask):
/// candle's `avg_pool2d(2)` of the masked input, the window summed in the same order.
/// `None` off the CPU or outside f32/f64 (the caller uses candle's op).
pub(crate) fn avg_pool2(x: &Tensor, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
    let (b, c, h, w) = x.dims4()?;
    let planes = (h * w, (h / 2) * (w / 2));
    let dims = [b, c, h / 2, w / 2];
    match x.dtype() {
        DType::F32 => run(x, mask, &dims, planes, |s, m, d| {
            pool::<f32>(s, m, d, (h, w))
        }),
        DType::F64 => run(x, mask, &dims, planes, |s, m, d| {
            pool::<f64>(s, m, d, (h, w))
        }),
        _ => Ok(None),
    }
}

/// The transpose of [`avg_pool2`] for inputs of side lengths `(h, w)`: each value spread as
/// a quarter over its window (times the mask), zero in an odd last row or column.
pub(crate) fn avg_pool2_transpose(
    u: &Tensor,
    (h, w): (usize, usize),
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let (b, c, ho, wo) = u.dims4()?;
    if (ho, wo) != (h / 2, w / 2) {
        bail!("avg_pool2 transpose: ({ho}, {wo}) planes for inputs ({h}, {w})")
    }
    let planes = (ho * wo, h * w);
    let dims = [b, c, h, w];
    match u.dtype() {
        DType::F32 => run(u, mask, &dims, planes, |s, m, d| {
            spread::<f32>(s, m, d, (h, w))
        }),
        DType::F64 => run(u, mask, &dims, planes, |s, m, d| {
            spread::<f64>(s, m, d, (h, w))
        }),
        _ => Ok(None),
    }
}

/// Runs a plane-by-plane kernel on a CPU tensor, pieces of [`PLANES`] planes in parallel,
/// giving a tensor of shape `dims` (`None` off the CPU). The kernel gets a piece of the
/// source, the mask planes of its planes (cycling), and its piece of the output.
fn run<T: WithDType>(
    t: &Tensor,
    mask: Option<&Tensor>,
    dims: &[usize],
    (plane_in, plane_out): (usize, usize),
    kernel: impl Fn(&[T], Option<MaskPlanes<T>>, &mut [T]) + Sync,
) -> Result<Option<Tensor>> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let src = dense::<T>(cpu, layout)?;
    let mask_guard = mask.map(|m| m.storage_and_layout());
    let mask_values = match &mask_guard {
        Some((storage, layout)) => match &**storage {
            Storage::Cpu(cpu) => Some(dense::<T>(cpu, layout)?),
            _ => return Ok(None),
        },
        None => None,
    };
    // The mask lies on the full-resolution side.
    let plane_mask = plane_in.max(plane_out);
    if let Some(m) = &mask_values {
        if m.is_empty() || m.len() % plane_mask.max(1) != 0 {
            bail!(
                "avg_pool2: a mask of {} values for planes of {plane_mask}",
                m.len()
            )
        }
    }
    let mut dst = vec![T::zero(); dims.iter().product()];
    if plane_in > 0 && plane_out > 0 {
        dst.par_chunks_mut(PLANES * plane_out)
            .zip(src.par_chunks(PLANES * plane_in))
            .enumerate()
            .for_each(|(c, (d, s))| {
                let masks = mask_values.as_deref().map(|m| MaskPlanes {
                    values: m,
                    plane: plane_mask,
                    first: c * PLANES,
                });
                kernel(s, masks, d)
            });
    }
    Ok(Some(Tensor::from_vec(dst, dims, &Device::Cpu)?))
}

/// The mask planes of a piece of planes: plane `first + i` reads mask plane
/// `(first + i) mod (values.len() / plane)`.
#[derive(Clone, Copy)]
struct MaskPlanes<'a, T> {
    values: &'a [T],
    plane: usize,
    first: usize,
}

impl<'a, T> MaskPlanes<'a, T> {
    fn get(&self, i: usize) -> &'a [T] {
        let count = self.values.len() / self.plane;
        let p = (self.first + i) % count;
        &self.values[p * self.plane..(p + 1) * self.plane]
    }
}

/// `v` where `x ≥ 0`, else 0 (ReLU's derivative, candle's convention).
fn masked<T: WithDType>(v: T, x: T) -> T {
    if x >= T::zero() {
        v
    } else {
        T::zero()
    }
}

fn pool<T: WithDType>(
    src: &[T],
    mask: Option<MaskPlanes<T>>,
    dst: &mut [T],
    (h, w): (usize, usize),
) {
    let (ho, wo) = (h / 2, w / 2);
    let quarter = T::from_f64(0.25);
    let planes = src.chunks_exact(h * w).zip(dst.chunks_exact_mut(ho * wo));
    for (i, (plane, out)) in planes.enumerate() {
        for (r, row) in out.chunks_exact_mut(wo).enumerate() {
            let top = plane[2 * r * w..][..2 * wo].chunks_exact(2);
            let bottom = plane[(2 * r + 1) * w..][..2 * wo].chunks_exact(2);
            match mask.map(|m| m.get(i)) {
                None => {
                    for ((o, t), b) in row.iter_mut().zip(top).zip(bottom) {
                        *o = (t[0] + t[1] + b[0] + b[1]) * quarter;
                    }
                }
                Some(m) => {
                    let mt = m[2 * r * w..][..2 * wo].chunks_exact(2);
                    let mb = m[(2 * r + 1) * w..][..2 * wo].chunks_exact(2);
                    for ((((o, t), b), mt), mb) in
                        row.iter_mut().zip(top).zip(bottom).zip(mt).zip(mb)
                    {
                        *o = (masked(t[0], mt[0])
                            + masked(t[1], mt[1])
                            + masked(b[0], mb[0])
                            + masked(b[1], mb[1]))
                            * quarter;
                    }
                }
            }
        }
    }
}

fn spread<T: WithDType>(
    src: &[T],
    mask: Option<MaskPlanes<T>>,
    dst: &mut [T],
    (h, w): (usize, usize),
) {
    let (ho, wo) = (h / 2, w / 2);
    let (zero, quarter) = (T::zero(), T::from_f64(0.25));
    let planes = src.chunks_exact(ho * wo).zip(dst.chunks_exact_mut(h * w));
    for (i, (plane, out)) in planes.enumerate() {
        let m = mask.map(|m| m.get(i));
        for (r, row) in out.chunks_exact_mut(w).enumerate() {
            if r / 2 >= ho {
                row.fill(zero);
                continue;
            }
            let values = &plane[r / 2 * wo..(r / 2 + 1) * wo];
            let (pairs, tail) = row.split_at_mut(2 * wo);
            tail.fill(zero);
            match m {
                None => {
                    for (pair, &v) in pairs.chunks_exact_mut(2).zip(values) {
                        pair[0] = v * quarter;
                        pair[1] = v * quarter;
                    }
                }
                Some(m) => {
                    let mrow = m[r * w..][..2 * wo].chunks_exact(2);
                    for ((pair, &v), mp) in pairs.chunks_exact_mut(2).zip(values).zip(mrow) {
                        pair[0] = masked(v * quarter, mp[0]);
                        pair[1] = masked(v * quarter, mp[1]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_ops::test_util::{bits, dot, seeded};

    /// Masked pooling equals candle's pooling of the masked input bit for bit (one mask for
    /// two stacked copies of the batch, odd sides), and its transpose is its adjoint.
    #[test]
    fn masked_pool_is_pool_of_masked_input_and_transposes() {
        for (h, w) in [(6, 8), (7, 5)] {
            let x = seeded(&[2, 3, h, w], 1, DType::F64);
            let t = seeded(&[4, 3, h, w], 2, DType::F64);
            let mask = x.ge(0.0).unwrap().to_dtype(DType::F64).unwrap();
            let expected = (t.clone() * Tensor::cat(&[&mask, &mask], 0).unwrap())
                .unwrap()
                .avg_pool2d(2)
                .unwrap();
            let ours = avg_pool2(&t, Some(&x)).unwrap().unwrap();
            assert_eq!(bits(&ours), bits(&expected));
            let u = seeded(ours.dims(), 3, DType::F64);
            let back = avg_pool2_transpose(&u, (h, w), Some(&x)).unwrap().unwrap();
            let (lhs, rhs) = (dot(&ours, &u), dot(&t, &back));
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }
}
