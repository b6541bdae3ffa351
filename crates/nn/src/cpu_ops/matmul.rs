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

use candle_core::{bail, Result, Shape, Tensor, WithDType};

use super::channel_sum::channel_sum;
use super::custom::{apply2, apply3, grad_if, Arg, CpuOp};
use super::gemm::{matmul as gemm_into, matmul_new, Mat, Threads};

/// `a·b` for 2-d `a: (m, k)`, `b: (k, n)` on the CPU, f32 or f64.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    MatMul::apply(false, false, a, b)
}

/// `x·wᵀ` for 2-d `x: (m, k)`, `w: (n, k)` (a linear layer; `w`'s gradient comes out in
/// `w`'s own layout, with no transposed view to add through).
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    MatMul::apply(false, true, x, w)
}

/// `x·wᵀ + z` for 2-d `x: (m, k)`, `w: (n, k)` and `z` a row shift `(n,)` (a linear
/// layer's bias) or an `(m, n)` matrix, `z` being the GEMM's starting value.
pub(crate) fn matmul_t_add(x: &Tensor, w: &Tensor, z: &Tensor) -> Result<Tensor> {
    apply3(
        MatMulAdd(MatMul {
            ta: false,
            tb: true,
        }),
        x,
        w,
        z,
    )
}

/// `op_a(a)·op_b(b)`, `op_x` the transpose when `tx`.
struct MatMul {
    ta: bool,
    tb: bool,
}

impl MatMul {
    fn apply(ta: bool, tb: bool, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        apply2(MatMul { ta, tb }, a, b)
    }

    /// `op_a(a)·op_b(b) (+ z)`, `z` a row shift `(n,)` or an `(m, n)` matrix.
    fn product<T: WithDType>(
        &self,
        a: Arg<'_, T>,
        b: Arg<'_, T>,
        addend: Option<Arg<'_, T>>,
    ) -> Result<(Vec<T>, Shape)> {
        let (a, b) = (view(a, self.ta)?, view(b, self.tb)?);
        if a.cols != b.rows {
            bail!(
                "matmul: ({}x{})·({}x{}) inner dimensions differ",
                a.rows,
                a.cols,
                b.rows,
                b.cols
            )
        }
        let (m, n) = (a.rows, b.cols);
        let Some(z) = addend else {
            return Ok((matmul_new(a, b, Threads::Pool)?, Shape::from((m, n))));
        };
        // The output starts as the addend and the product is accumulated onto it.
        let mut out = match z.dims() {
            [len] if *len == n => z.dense()?.repeat(m),
            [rows, cols] if (*rows, *cols) == (m, n) => z.dense()?.into_owned(),
            other => bail!("matmul: addend of shape {other:?}, expected [{n}] or [{m}, {n}]"),
        };
        gemm_into(&mut out, (n, 1), a, b, true, Threads::Pool)?;
        Ok((out, Shape::from((m, n))))
    }
}

/// The strided 2-d view of an argument, read in place, transposed when `t`.
fn view<T: WithDType>(arg: Arg<'_, T>, t: bool) -> Result<Mat<'_, T>> {
    let layout = arg.layout();
    let (&[rows, cols], &[rs, cs]) = (layout.dims(), layout.stride()) else {
        bail!(
            "matmul: operand of shape {:?}, expected 2 dimensions",
            layout.dims()
        )
    };
    let Some(data) = arg.storage().get(layout.start_offset()..) else {
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

impl CpuOp<2> for MatMul {
    const NAME: &'static str = "saddlescope-matmul";

    fn run<T: WithDType>(&self, [a, b]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        self.product(a, b, None)
    }

    fn backward(
        &self,
        [a, b]: [&Tensor; 2],
        _c: &Tensor,
        g: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let (ta, tb) = (self.ta, self.tb);
        let da = grad_if(a, || {
            if ta {
                MatMul::apply(tb, true, b, g)
            } else {
                MatMul::apply(false, !tb, g, b)
            }
        })?;
        let db = grad_if(b, || {
            if tb {
                MatMul::apply(true, ta, g, a)
            } else {
                MatMul::apply(!ta, false, a, g)
            }
        })?;
        Ok([da, db])
    }
}

/// `op_a(a)·op_b(b) + z`: arguments `(a, b, z)`. Gradients: those of [`MatMul`], and
/// `dz = g` or, for a row shift, `dz = Σ_rows g` (a channel sum over the columns).
struct MatMulAdd(MatMul);

impl CpuOp<3> for MatMulAdd {
    const NAME: &'static str = "saddlescope-matmul-add";

    fn run<T: WithDType>(&self, [a, b, z]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        self.0.product(a, b, Some(z))
    }

    fn backward(
        &self,
        [a, b, z]: [&Tensor; 3],
        c: &Tensor,
        g: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let [da, db] = self.0.backward([a, b], c, g)?;
        let dz = grad_if(z, || {
            if z.rank() == 1 {
                channel_sum(g)
            } else {
                Ok(g.clone())
            }
        })?;
        Ok([da, db, dz])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_ops::test_util::{max_rel, on_threads, seeded};
    use candle_core::{DType, Var};

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
                let a = if ta {
                    seeded(&[k, m], 1, dtype)
                } else {
                    seeded(&[m, k], 1, dtype)
                };
                let b = if tb {
                    seeded(&[n, k], 2, dtype)
                } else {
                    seeded(&[k, n], 2, dtype)
                };
                let r = seeded(&[m, n], 3, dtype);
                let (av, bv) = (Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap());
                let run = |c: Tensor| {
                    let g = c.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                    let ga = g.get(av.as_tensor()).unwrap().clone();
                    let gb = g.get(bv.as_tensor()).unwrap().clone();
                    (c, ga, gb)
                };
                let ours = run(MatMul::apply(ta, tb, av.as_tensor(), bv.as_tensor()).unwrap());
                let op = |t: &Tensor, tr: bool| if tr { t.t().unwrap() } else { t.clone() };
                let theirs = run(op(av.as_tensor(), ta)
                    .matmul(&op(bv.as_tensor(), tb))
                    .unwrap());
                for (what, o, t) in [
                    ("c", &ours.0, &theirs.0),
                    ("da", &ours.1, &theirs.1),
                    ("db", &ours.2, &theirs.2),
                ] {
                    let err = max_rel(o, t);
                    assert!(err <= tol, "{dtype:?} ta={ta} tb={tb} {what}: {err:e}");
                }
            }
        }
    }

    /// `x·wᵀ + z` (row shift or full matrix) and its three gradients equal candle's
    /// `matmul` + `broadcast_add` (f64, 1e-13).
    #[test]
    fn matmul_t_add_matches_candle_with_gradients() {
        let (x, w) = (
            seeded(&[5, 7], 1, DType::F64),
            seeded(&[3, 7], 2, DType::F64),
        );
        let r = seeded(&[5, 3], 3, DType::F64);
        for z in [
            seeded(&[1, 3], 4, DType::F64).squeeze(0).unwrap(),
            seeded(&[5, 3], 5, DType::F64),
        ] {
            let vars = [&x, &w, &z].map(|t| Var::from_tensor(t).unwrap());
            let [xv, wv, zv] = vars.each_ref().map(|v| v.as_tensor());
            let run = |c: Tensor| {
                let g = c.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                [
                    c,
                    g.get(xv).unwrap().clone(),
                    g.get(wv).unwrap().clone(),
                    g.get(zv).unwrap().clone(),
                ]
            };
            let ours = run(matmul_t_add(xv, wv, zv).unwrap());
            let theirs = run(xv
                .matmul(&wv.t().unwrap())
                .unwrap()
                .broadcast_add(zv)
                .unwrap());
            for (o, t) in ours.iter().zip(&theirs) {
                assert!(
                    max_rel(o, t) <= 1e-13,
                    "rank {}: {:e}",
                    z.rank(),
                    max_rel(o, t)
                );
            }
        }
        assert!(matmul_t_add(&x, &w, &seeded(&[1, 4], 6, DType::F64).squeeze(0).unwrap()).is_err());
        let plain = matmul_t(&x, &w).unwrap();
        assert!(max_rel(&plain, &x.matmul(&w.t().unwrap()).unwrap()) <= 1e-14);
    }

    /// Large products run on rayon's pool, yet results are bit-identical for any thread
    /// count (gemm splits the output, never the inner sum).
    #[test]
    fn bit_identical_across_thread_counts() {
        let (x, w) = (
            seeded(&[200, 300], 7, DType::F32),
            seeded(&[150, 300], 8, DType::F32),
        );
        let run = |threads: usize| {
            on_threads(threads, || {
                matmul_t(&x, &w)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// A strided operand (a transposed view) is read in place; a constant operand gets no
    /// gradient.
    #[test]
    fn views_and_untracked_operands() {
        let x = seeded(&[6, 4], 4, DType::F64);
        let w = Var::from_tensor(&seeded(&[5, 4], 5, DType::F64)).unwrap();
        let y = matmul(&x, &w.as_tensor().t().unwrap()).unwrap();
        let expected = x
            .matmul(&w.as_tensor().t().unwrap().contiguous().unwrap())
            .unwrap();
        assert!(max_rel(&y, &expected) <= 1e-14);
        let op = MatMul {
            ta: false,
            tb: false,
        };
        let [dx, dw] = op
            .backward([&x, &w.as_tensor().t().unwrap()], &y, &y)
            .unwrap();
        assert!(dx.is_none() && dw.is_some());
        assert!(matmul(&x, &x).is_err());
    }
}
