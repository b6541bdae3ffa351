//! CPU ReLU as two candle custom ops: `relu(x)` and its derivative map
//! `mask_mul(t, x) = t ⊙ 1[x ≥ 0]`.
//!
//! candle's ReLU backward builds five activation-sized tensors (zeros, a comparison, a
//! dtype cast, a product, a sum) and the tangent rule three more; here the backward of
//! `relu` and the tangent are one `mask_mul` each, which keeps no tensor of its own alive
//! in the graph. The mask `x ≥ 0` is candle's convention (so `H·v` stays the derivative of
//! the gradient candle would compute) and is constant: `mask_mul` has no gradient in `x`
//! (zero almost everywhere) and its gradient in `t` is `mask_mul` again, so derivatives of
//! every order stay exact.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

use crate::conv_cpu::{dense, dispatch3};

/// Elements per parallel piece of an elementwise map.
const PIECE: usize = 1 << 18;

/// `max(x, 0)` on the CPU (f32 or f64).
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    x.apply_op1(Relu)
}

/// `t ⊙ 1[x ≥ 0]` on the CPU (f32 or f64), `t` and `x` of one shape.
pub(crate) fn mask_mul(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    t.apply_op2(x, MaskMul)
}

/// `(a + b) ⊙ 1[x ≥ 0]` on the CPU (f32 or f64), all of one shape: the tangent of
/// `relu(u + w)` without materializing `u̇ + ẇ` (one activation-sized tensor fewer per
/// residual block in an HVP's graph).
pub(crate) fn mask_mul_sum(a: &Tensor, b: &Tensor, x: &Tensor) -> Result<Tensor> {
    a.apply_op3(b, x, MaskMulSum)
}

/// `f` of every element, in parallel pieces of [`PIECE`]; the output is written once
/// (collected, not zero-filled first).
fn map1<T: WithDType>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    x.par_iter().with_min_len(PIECE).map(|&x| f(x)).collect()
}

fn masked<T: WithDType>(t: &[T], x: &[T]) -> Result<Vec<T>> {
    if t.len() != x.len() {
        bail!("mask_mul: {} values against a mask of {}", t.len(), x.len())
    }
    let zero = T::from_f64(0.0);
    Ok(t.par_iter()
        .zip(x)
        .with_min_len(PIECE)
        .map(|(&t, &x)| if x >= zero { t } else { zero })
        .collect())
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "saddlescope-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(map1(&dense(storage, layout)?, |v| {
                if v > 0.0 {
                    v
                } else {
                    0.0
                }
            })),
            CpuStorage::F64(_) => CpuStorage::F64(map1(&dense(storage, layout)?, |v| {
                if v > 0.0 {
                    v
                } else {
                    0.0
                }
            })),
            other => bail!(
                "{}: dtype {:?}, expected f32 or f64",
                self.name(),
                other.dtype()
            ),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(mask_mul(grad, x)?))
    }
}

struct MaskMul;

impl CustomOp2 for MaskMul {
    fn name(&self) -> &'static str {
        "saddlescope-relu-mask-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!(
                "mask_mul: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(masked::<f32>(&dense(s1, l1)?, &dense(s2, l2)?)?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(masked::<f64>(&dense(s1, l1)?, &dense(s2, l2)?)?)
            }
            _ => bail!(
                "{}: dtypes {:?} and {:?}, expected both f32 or both f64",
                self.name(),
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        t: &Tensor,
        x: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dt = if t.track_op() {
            Some(mask_mul(grad, x)?)
        } else {
            None
        };
        Ok((dt, None))
    }
}

struct MaskMulSum;

impl CustomOp3 for MaskMulSum {
    fn name(&self) -> &'static str {
        "saddlescope-relu-mask-mul-sum"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() || l1.dims() != l3.dims() {
            bail!(
                "mask_mul_sum: shapes {:?}, {:?} and {:?} differ",
                l1.dims(),
                l2.dims(),
                l3.dims()
            )
        }
        fn run<T: WithDType>(a: &[T], b: &[T], x: &[T]) -> Result<Vec<T>> {
            let zero = T::from_f64(0.0);
            Ok(a.par_iter()
                .zip(b)
                .zip(x)
                .with_min_len(PIECE)
                .map(|((&a, &b), &x)| if x >= zero { a + b } else { zero })
                .collect())
        }
        dispatch3(
            self.name(),
            (s1, l1),
            (s2, l2),
            (s3, l3),
            l1.dims(),
            run::<f32>,
            run::<f64>,
        )
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        x: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let masked = mask_mul(grad, x)?;
        let da = a.track_op().then(|| masked.clone());
        let db = b.track_op().then_some(masked);
        Ok((da, db, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Values, gradient and tangent rule equal candle's `relu` and its backward exactly
    /// (zeros included: the mask is `x ≥ 0`), with a strided input.
    #[test]
    fn matches_candle_relu_and_gradient() {
        for dtype in [DType::F64, DType::F32] {
            let v: Vec<f64> = (0..70).map(|i| ((i * 37) % 23) as f64 - 11.0).collect();
            let x = Tensor::from_vec(v, (7, 10), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .t()
                .unwrap();
            let r = x.affine(0.5, 1.0).unwrap().contiguous().unwrap();
            let xv = Var::from_tensor(&x).unwrap();
            let grad = |y: Tensor| {
                let g = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(xv.as_tensor()).unwrap().clone())
            };
            let (ours, d_ours) = grad(relu(xv.as_tensor()).unwrap());
            let (theirs, d_theirs) = grad(xv.as_tensor().relu().unwrap());
            let exact = |a: &Tensor, b: &Tensor| {
                let d: f64 = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar()
                    .unwrap();
                assert_eq!(d, 0.0, "{dtype:?}");
            };
            exact(&ours, &theirs);
            exact(&d_ours, &d_theirs);
            exact(&mask_mul(&r, &x).unwrap(), &d_theirs);
        }
    }

    /// The mask gets no gradient; the tangent's gradient is the masked gradient again.
    #[test]
    fn mask_is_constant() {
        let x = Var::new(&[-1.0f64, 0.0, 2.0], &Device::Cpu).unwrap();
        let t = Var::new(&[3.0f64, 4.0, 5.0], &Device::Cpu).unwrap();
        let g = mask_mul(t.as_tensor(), x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(x.as_tensor()).is_none());
        let dt: Vec<f64> = g.get(t.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(dt, [0.0, 1.0, 1.0]);
        assert!(mask_mul(
            t.as_tensor(),
            &Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap()
        )
        .is_err());
        let g = mask_mul_sum(t.as_tensor(), t.as_tensor(), x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dt: Vec<f64> = g.get(t.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(dt, [0.0, 2.0, 2.0]);
        assert!(g.get(x.as_tensor()).is_none());
    }
}
