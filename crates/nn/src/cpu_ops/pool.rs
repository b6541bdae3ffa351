//! 2×2 average pooling (stride 2), optionally of `relu(x)` in the same pass, and its
//! adjoint as CPU ops, each the other's gradient, so derivatives of every order stay exact.
//!
//! `pool(x)[i, j] = (x[2i, 2j] + x[2i, 2j+1] + x[2i+1, 2j] + x[2i+1, 2j+1])·¼` per plane of
//! `x: (N, C, H, W)`, output `(N, C, ⌊H/2⌋, ⌊W/2⌋)`, summed in candle's order so values are
//! bit-identical to candle's `avg_pool2d(2)`; `unpool(g)` spreads `g·¼` back over each
//! window (zero on a dropped odd last row or column). candle's own backward upsamples the
//! gradient (nearest neighbour, wrong on odd sides), scales it and adds it in three more
//! passes; here it is one, planes in parallel.

use std::iter;

use candle_core::{bail, Result, Shape, Tensor, WithDType};

use super::custom::{apply1, grad_if, par_collect, Arg, CpuOp};
use super::relu::mask_mul;

/// 2×2 average pooling with stride 2 of `x: (N, C, H, W)` on the CPU (f32 or f64).
pub(crate) fn avg_pool2(x: &Tensor) -> Result<Tensor> {
    apply1(AvgPool2 { relu: false }, x)
}

/// `avg_pool2(relu(x))` in one pass on the CPU (f32 or f64); its gradient is
/// `unpool(g) ⊙ 1[x ≥ 0]` (ReLU's mask as candle's), itself differentiable.
pub(crate) fn relu_avg_pool2(x: &Tensor) -> Result<Tensor> {
    apply1(AvgPool2 { relu: true }, x)
}

/// The adjoint of [`avg_pool2`] for inputs of side lengths `(h, w)`.
fn unpool2(g: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
    apply1(Unpool2 { h, w }, g)
}

fn dims4(what: &str, dims: &[usize]) -> Result<[usize; 4]> {
    match *dims {
        [n, c, h, w] => Ok([n, c, h, w]),
        ref other => bail!("avg_pool2: {what} of shape {other:?}, expected 4 dimensions"),
    }
}

/// `avg_pool2(x)`, or `avg_pool2(relu(x))` when `relu`: argument `x`.
struct AvgPool2 {
    relu: bool,
}

impl CpuOp<1> for AvgPool2 {
    const NAME: &'static str = "saddlescope-avg-pool2";

    fn run<T: WithDType>(&self, [x]: [Arg<'_, T>; 1]) -> Result<(Vec<T>, Shape)> {
        let [n, c, h, w] = dims4("input", x.dims())?;
        let (ho, wo) = (h / 2, w / 2);
        if ho == 0 || wo == 0 {
            bail!(
                "avg_pool2: input of shape {:?} is smaller than 2x2",
                x.dims()
            )
        }
        let x = x.dense()?;
        let (zero, quarter) = (T::from_f64(0.0), T::from_f64(0.25));
        let relu = self.relu;
        let rectify = move |v: T| if !relu || v > zero { v } else { zero };
        let y = par_collect(
            (n * c * ho * wo, ho * wo),
            &[],
            || (),
            |p, out, _| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                for pair in plane.chunks_exact(2 * w).take(ho) {
                    let (top, bottom) = pair.split_at(w);
                    let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                    out.extend(windows.map(|(t, b)| {
                        let mut sum = zero;
                        sum += rectify(t[0]);
                        sum += rectify(t[1]);
                        sum += rectify(b[0]);
                        sum += rectify(b[1]);
                        sum * quarter
                    }));
                }
            },
        )?;
        Ok((y, Shape::from((n, c, ho, wo))))
    }

    fn backward(
        &self,
        [x]: [&Tensor; 1],
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 1]> {
        let (_, _, h, w) = x.dims4()?;
        Ok([grad_if(x, || {
            let spread = unpool2(grad, (h, w))?;
            if self.relu {
                mask_mul(&spread, x)
            } else {
                Ok(spread)
            }
        })?])
    }
}

/// `unpool2(g)` for inputs of side lengths `(h, w)`: argument `g`.
struct Unpool2 {
    h: usize,
    w: usize,
}

impl CpuOp<1> for Unpool2 {
    const NAME: &'static str = "saddlescope-avg-pool2-adjoint";

    fn run<T: WithDType>(&self, [g]: [Arg<'_, T>; 1]) -> Result<(Vec<T>, Shape)> {
        let [n, c, ho, wo] = dims4("gradient", g.dims())?;
        let (h, w) = (self.h, self.w);
        if (h / 2, w / 2) != (ho, wo) {
            bail!(
                "avg_pool2: gradient of shape {:?} for inputs of side lengths {h}x{w}",
                g.dims()
            )
        }
        let g = g.dense()?;
        let (zero, quarter) = (T::from_f64(0.0), T::from_f64(0.25));
        let x = par_collect(
            (n * c * h * w, h * w),
            &[],
            || (),
            |p, out, _| {
                for row in g[p * ho * wo..(p + 1) * ho * wo].chunks_exact(wo) {
                    for _ in 0..2 {
                        let spread = row.iter().flat_map(|&v| [v * quarter; 2]);
                        out.extend(spread.chain(iter::repeat_n(zero, w - 2 * wo)));
                    }
                }
                out.extend(iter::repeat_n(zero, (h - 2 * ho) * w));
            },
        )?;
        Ok((x, Shape::from((n, c, h, w))))
    }

    fn backward(
        &self,
        [g]: [&Tensor; 1],
        _x: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 1]> {
        Ok([grad_if(g, || avg_pool2(grad))?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_ops::test_util::{bits, on_threads, seeded};
    use candle_core::{DType, Var};

    /// Values and gradients equal candle's `avg_pool2d(2)` bit for bit on even sides; on
    /// odd sides the values do too and the gradient leaves the dropped row and column at
    /// zero (candle's nearest-neighbour upsampling misplaces gradient there; the adjoint
    /// test below checks ours).
    #[test]
    fn matches_candle_avg_pool2d_bit_for_bit() {
        for dtype in [DType::F64, DType::F32] {
            for dims in [[2, 3, 8, 6], [1, 2, 28, 28], [3, 1, 5, 7]] {
                let x = Var::from_tensor(&seeded(&dims, 1, dtype)).unwrap();
                let ours = avg_pool2(x.as_tensor()).unwrap();
                let theirs = x.as_tensor().avg_pool2d(2).unwrap();
                assert_eq!(bits(&ours), bits(&theirs), "{dtype:?} {dims:?}");
                let r = seeded(ours.dims(), 2, dtype);
                let grad = |y: &Tensor| {
                    let g = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                    g.get(x.as_tensor()).unwrap().clone()
                };
                let (d_ours, d_theirs) = (grad(&ours), grad(&theirs));
                if dims[2] % 2 == 0 && dims[3] % 2 == 0 {
                    assert_eq!(bits(&d_ours), bits(&d_theirs), "{dtype:?} {dims:?}");
                } else {
                    let (h, w) = (dims[2], dims[3]);
                    let last_row = d_ours.narrow(2, h - 1, 1).unwrap();
                    let last_col = d_ours.narrow(3, w - 1, 1).unwrap();
                    for edge in [last_row, last_col] {
                        assert!(bits(&edge).iter().all(|&b| b == 0), "{dims:?}");
                    }
                }
            }
        }
    }

    /// `⟨unpool(g), m⟩ = ⟨g, pool(m)⟩` (adjoints), and the pair differentiates each other:
    /// the gradient of `⟨r, unpool(g)⟩` in `g` is `pool(r)`.
    #[test]
    fn pool_and_unpool_are_adjoint() {
        let g = Var::from_tensor(&seeded(&[2, 3, 3, 2], 4, DType::F64)).unwrap();
        let m = seeded(&[2, 3, 7, 5], 5, DType::F64);
        let up = unpool2(g.as_tensor(), (7, 5)).unwrap();
        let lhs: f64 = up.mul(&m).unwrap().sum_all().unwrap().to_scalar().unwrap();
        let pooled = avg_pool2(&m).unwrap();
        let rhs: f64 = g
            .as_tensor()
            .mul(&pooled)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            (lhs - rhs).abs() <= 1e-14 * rhs.abs().max(1.0),
            "{lhs} {rhs}"
        );
        let d = up.mul(&m).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(bits(d.get(g.as_tensor()).unwrap()), bits(&pooled));
        assert!(unpool2(g.as_tensor(), (8, 5)).is_err());
        assert!(avg_pool2(&seeded(&[1, 1, 1, 4], 6, DType::F64)).is_err());
    }

    /// `relu_avg_pool2` equals `avg_pool2(relu(x))` (candle's ReLU, then this module's
    /// pooling) bit for bit, value and gradient, on even and odd sides.
    #[test]
    fn fused_relu_pool_equals_the_composition() {
        for dtype in [DType::F64, DType::F32] {
            for dims in [[2, 3, 8, 6], [3, 1, 5, 7]] {
                let x =
                    Var::from_tensor(&seeded(&dims, 3, dtype).affine(1.0, -0.3).unwrap()).unwrap();
                let fused = relu_avg_pool2(x.as_tensor()).unwrap();
                let composed = avg_pool2(&x.as_tensor().relu().unwrap()).unwrap();
                assert_eq!(bits(&fused), bits(&composed), "{dtype:?} {dims:?}");
                let r = seeded(fused.dims(), 4, dtype);
                let grad = |y: &Tensor| {
                    let g = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                    bits(g.get(x.as_tensor()).unwrap())
                };
                assert_eq!(grad(&fused), grad(&composed), "{dtype:?} {dims:?}");
            }
        }
    }

    /// Results do not depend on the number of threads.
    #[test]
    fn bit_identical_across_thread_counts() {
        let x = seeded(&[64, 16, 28, 28], 7, DType::F32);
        let run = |threads: usize| {
            on_threads(threads, || {
                let y = avg_pool2(&x).unwrap();
                [bits(&y), bits(&unpool2(&y, (28, 28)).unwrap())]
            })
        };
        assert_eq!(run(1), run(3));
    }
}
