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

use candle_core::{bail, Result, Shape, Tensor, WithDType};

use super::custom::{apply1, apply2, apply3, grad_if, par_collect, Arg, CpuOp, PIECE_VALUES};

/// `max(x, 0)` on the CPU (f32 or f64).
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    apply1(Relu, x)
}

/// `t ⊙ 1[x ≥ 0]` on the CPU (f32 or f64), `t` and `x` of one shape.
pub(crate) fn mask_mul(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    apply2(MaskMul, t, x)
}

/// `(a + b) ⊙ 1[x ≥ 0]` on the CPU (f32 or f64), all of one shape: the tangent of
/// `relu(u + w)` without materializing `u̇ + ẇ` (one activation-sized tensor fewer per
/// residual block in an HVP's graph).
pub(crate) fn mask_mul_sum(a: &Tensor, b: &Tensor, x: &Tensor) -> Result<Tensor> {
    apply3(MaskMulSum, a, b, x)
}

/// Errors unless every argument has the first one's shape.
fn same_shapes<T: WithDType>(name: &str, args: &[Arg<'_, T>]) -> Result<Shape> {
    let dims = args[0].dims();
    if args.iter().any(|a| a.dims() != dims) {
        let all: Vec<_> = args.iter().map(|a| a.dims()).collect();
        bail!("{name}: shapes {all:?} differ")
    }
    Ok(Shape::from(dims))
}

/// `f` of the values at each position of `args` (all of one length), in parallel pieces,
/// written once.
fn map_values<T: WithDType, const N: usize>(
    args: [&[T]; N],
    f: impl Fn([T; N]) -> T + Sync,
) -> Result<Vec<T>> {
    let len = args[0].len();
    par_collect(
        (len, PIECE_VALUES),
        &[],
        || (),
        |piece, out, _| {
            let start = piece * PIECE_VALUES;
            let end = (start + PIECE_VALUES).min(len);
            let parts = args.map(|a| &a[start..end]);
            out.extend((0..end - start).map(|i| f(parts.map(|p| p[i]))));
        },
    )
}

struct Relu;

impl CpuOp<1> for Relu {
    const NAME: &'static str = "saddlescope-relu";

    fn run<T: WithDType>(&self, [x]: [Arg<'_, T>; 1]) -> Result<(Vec<T>, Shape)> {
        let zero = T::from_f64(0.0);
        let y = map_values([&x.dense()?], |[v]| if v > zero { v } else { zero })?;
        Ok((y, Shape::from(x.dims())))
    }

    fn backward(
        &self,
        [x]: [&Tensor; 1],
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(mask_mul(grad, x)?)])
    }
}

struct MaskMul;

impl CpuOp<2> for MaskMul {
    const NAME: &'static str = "saddlescope-relu-mask-mul";

    fn run<T: WithDType>(&self, args: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let shape = same_shapes(Self::NAME, &args)?;
        let [t, x] = args;
        let zero = T::from_f64(0.0);
        let y = map_values(
            [&t.dense()?, &x.dense()?],
            |[t, x]| {
                if x >= zero {
                    t
                } else {
                    zero
                }
            },
        )?;
        Ok((y, shape))
    }

    fn backward(
        &self,
        [t, x]: [&Tensor; 2],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        Ok([grad_if(t, || mask_mul(grad, x))?, None])
    }
}

struct MaskMulSum;

impl CpuOp<3> for MaskMulSum {
    const NAME: &'static str = "saddlescope-relu-mask-mul-sum";

    fn run<T: WithDType>(&self, args: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let shape = same_shapes(Self::NAME, &args)?;
        let [a, b, x] = args;
        let zero = T::from_f64(0.0);
        let (a, b, x) = (a.dense()?, b.dense()?, x.dense()?);
        let y = map_values(
            [&a, &b, &x],
            |[a, b, x]| if x >= zero { a + b } else { zero },
        )?;
        Ok((y, shape))
    }

    fn backward(
        &self,
        [a, b, x]: [&Tensor; 3],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let masked = mask_mul(grad, x)?;
        Ok([
            grad_if(a, || Ok(masked.clone()))?,
            grad_if(b, || Ok(masked))?,
            None,
        ])
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
