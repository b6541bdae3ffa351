//! CPU matrix product `op(a)·op(b)` (`op` = identity or transpose) as a candle custom op
//! whose backward skips untracked operands.
//!
//! candle's own matmul backward computes both operand gradients even when one is a
//! constant: the input batch of an MLP's first layer costs a wasted `(N×out)·(out×in)`
//! product per gradient and per HVP (a third of an MLP gradient). For `C = op_a(A)·op_b(B)`
//! and an incoming gradient `G`, the gradients are products of the same family, so any
//! order of derivative stays exact:
//! - `dA = G·op_b(B)ᵀ` (`a` not transposed) or `op_b(B)·Gᵀ` (transposed);
//! - `dB = op_a(A)ᵀ·G` (`b` not transposed) or `Gᵀ·op_a(A)` (transposed).
//!
//! Operands of any 2-d strides are read in place (a transposed weight is a view).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use crate::cpu_gemm::{matmul as gemm_into, Mat, Threads};

/// `a·b` for 2-d `a: (m, k)`, `b: (k, n)` on the CPU, f32 or f64.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.apply_op2(
        b,
        MatMul {
            ta: false,
            tb: false,
        },
    )
}

/// `op_a(a)·op_b(b)`, `op_x` the transpose when `tx`.
struct MatMul {
    ta: bool,
    tb: bool,
}

impl MatMul {
    fn apply(ta: bool, tb: bool, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.apply_op2(b, MatMul { ta, tb })
    }
}

/// The strided 2-d view of an argument, transposed when `t`.
fn view<'a, T: WithDType>(storage: &'a CpuStorage, layout: &Layout, t: bool) -> Result<Mat<'a, T>> {
    let data = storage.as_slice::<T>()?;
    let (&[rows, cols], &[rs, cs]) = (layout.dims(), layout.stride()) else {
        bail!("matmul: operand of shape {:?}, expected 2 dimensions", layout.dims())
    };
    let Some(data) = data.get(layout.start_offset()..) else {
        bail!("matmul: layout {layout:?} exceeds its storage")
    };
    let m = Mat {
        data,
        rows,
        cols,
        rs,
        cs,
    };
    Ok(if t { m.t() } else { m })
}

fn product<T: WithDType>(
    op: &MatMul,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> Result<(Vec<T>, [usize; 2])> {
    let (a, b) = (view::<T>(s1, l1, op.ta)?, view::<T>(s2, l2, op.tb)?);
    if a.cols != b.rows {
        bail!(
            "matmul: ({}x{})·({}x{}) inner dimensions differ",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        )
    }
    let mut out = vec![T::from_f64(0.0); a.rows * b.cols];
    gemm_into(&mut out, (b.cols, 1), a, b, false, Threads::Pool)?;
    Ok((out, [a.rows, b.cols]))
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "saddlescope-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (storage, dims) = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let (v, d) = product::<f32>(self, (s1, l1), (s2, l2))?;
                (CpuStorage::F32(v), d)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let (v, d) = product::<f64>(self, (s1, l1), (s2, l2))?;
                (CpuStorage::F64(v), d)
            }
            _ => bail!(
                "matmul: operands of dtype {:?} and {:?}, expected both f32 or both f64",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((storage, Shape::from(dims.to_vec())))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _c: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (ta, tb) = (self.ta, self.tb);
        let da = if !a.track_op() {
            None
        } else if ta {
            Some(MatMul::apply(tb, true, b, g)?)
        } else {
            Some(MatMul::apply(false, !tb, g, b)?)
        };
        let db = if !b.track_op() {
            None
        } else if tb {
            Some(MatMul::apply(true, ta, g, a)?)
        } else {
            Some(MatMul::apply(!ta, false, a, g)?)
        };
        Ok((da, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn seeded(rows: usize, cols: usize, seed: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = (0..rows * cols)
            .map(|i| (((i + 1) * (seed + 3) * 7919) % 1009) as f64 / 504.5 - 1.0)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
        let f = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (f(a), f(b));
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter().zip(&b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// For every transposition pair, values and both gradients of `⟨r, op(a)·op(b)⟩`
    /// equal candle's (on materialized transposes): f64 to 1e-13, f32 to 1e-5. The
    /// backward ops are products of the same family, so this also covers every higher
    /// derivative. The operands of `ta`/`tb` are passed as views of the other layout.
    #[test]
    fn all_transpositions_match_candle_with_gradients() {
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-13 } else { 1e-5 };
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (m, k, n) = (5, 7, 3);
                let a = if ta { seeded(k, m, 1, dtype) } else { seeded(m, k, 1, dtype) };
                let b = if tb { seeded(n, k, 2, dtype) } else { seeded(k, n, 2, dtype) };
                let r = seeded(m, n, 3, dtype);
                let (av, bv) = (Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap());
                let run = |c: Tensor| {
                    let g = c.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                    let ga = g.get(av.as_tensor()).unwrap().clone();
                    let gb = g.get(bv.as_tensor()).unwrap().clone();
                    (c, ga, gb)
                };
                let ours = run(MatMul::apply(ta, tb, av.as_tensor(), bv.as_tensor()).unwrap());
                let op = |t: &Tensor, tr: bool| if tr { t.t().unwrap() } else { t.clone() };
                let theirs = run(op(av.as_tensor(), ta).matmul(&op(bv.as_tensor(), tb)).unwrap());
                for (what, o, t) in [("c", &ours.0, &theirs.0), ("da", &ours.1, &theirs.1), ("db", &ours.2, &theirs.2)] {
                    let err = max_rel(o, t);
                    assert!(err <= tol, "{dtype:?} ta={ta} tb={tb} {what}: {err:e}");
                }
            }
        }
    }

    /// A strided operand (a transposed view) is read in place; a constant operand gets no
    /// gradient.
    #[test]
    fn views_and_untracked_operands() {
        let x = seeded(6, 4, 4, DType::F64);
        let w = Var::from_tensor(&seeded(5, 4, 5, DType::F64)).unwrap();
        let y = matmul(&x, &w.as_tensor().t().unwrap()).unwrap();
        let expected = x.matmul(&w.as_tensor().t().unwrap().contiguous().unwrap()).unwrap();
        assert!(max_rel(&y, &expected) <= 1e-14);
        let op = MatMul {
            ta: false,
            tb: false,
        };
        let (dx, dw) = op.bwd(&x, &w.as_tensor().t().unwrap(), &y, &y).unwrap();
        assert!(dx.is_none() && dw.is_some());
        assert!(matmul(&x, &x).is_err());
    }
}
