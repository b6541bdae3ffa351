//! Dual values: a primal tensor with an optional forward-mode tangent.

use candle_core::{Result as CResult, Tensor};

use crate::error::Result;
use crate::ops;
use crate::value::Value;

/// A primal tensor with its forward-mode tangent (Pearlmutter's R-operator).
///
/// `tangent: None` is an exact zero tangent that costs nothing: the input batch, running
/// statistics and parameters outside the Hessian block carry no tangent, so their tangent
/// products are never computed. Tangents have the primal's shape.
#[derive(Clone, Debug)]
pub struct Dual {
    /// The value itself.
    pub primal: Tensor,
    /// Its directional derivative, `None` for zero.
    pub tangent: Option<Tensor>,
}

impl Dual {
    /// A dual value from a primal and a tangent of the same shape.
    pub fn new(primal: Tensor, tangent: Option<Tensor>) -> Self {
        Self { primal, tangent }
    }
}

impl Dual {
    /// `f(a, b) + z` for `f` bilinear, tangent `f(ȧ, b) + f(a, ḃ) + ż`, given `f_add(a, b, z)
    /// = f(a, b) + z` computed in one pass (`z` the starting value of a GEMM): `ż` starts
    /// the first tangent term and each term starts the next, so the tangent costs its
    /// products and nothing more. A lone `ż` is `spread` to the output's shape.
    ///
    /// The primal and the tangent are independent, so when one product is large (`macs`
    /// multiply-adds) they run side by side on rayon's pool: two products that each keep a
    /// core busy scale better than one product split in two (an MLP's first layer, whose
    /// tangent is a product as large as the primal: 1.6 → 1.2 ms on two cores). On a GPU they
    /// run one after the other ([`ops::run_side_by_side`]).
    fn bilinear_add(
        &self,
        rhs: &Self,
        addend: &Self,
        macs: usize,
        f_add: impl Fn(&Tensor, &Tensor, &Tensor) -> CResult<Tensor> + Sync,
        f: impl Fn(&Tensor, &Tensor) -> CResult<Tensor> + Sync,
        spread: impl Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    ) -> Result<Self> {
        let primal = || f_add(&self.primal, &rhs.primal, &addend.primal);
        let tangent = || self.bilinear_tangent(rhs, addend, &f_add, &f);
        let (primal, tangent) = if ops::run_side_by_side(&self.primal, macs) {
            rayon::join(primal, tangent)
        } else {
            (primal(), tangent())
        };
        let (primal, (tangent, products)) = (primal?, tangent?);
        let tangent = match (tangent, products) {
            (Some(t), 0) => Some(spread(&t, &primal)?),
            (t, _) => t,
        };
        Ok(Self { primal, tangent })
    }

    /// The tangent terms of [`bilinear_add`](Self::bilinear_add) chained through the GEMM
    /// addend, and how many products it took.
    fn bilinear_tangent(
        &self,
        rhs: &Self,
        addend: &Self,
        f_add: &impl Fn(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>,
        f: &impl Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    ) -> CResult<(Option<Tensor>, usize)> {
        // `f(ȧ, b)` last, so the final product's first argument is the tangent chain:
        // candle's backward visits arguments in order, and tangent-first ops make it
        // process the primal and tangent chains layer by layer instead of holding every
        // layer's primal gradient until the whole tangent chain is done (2x less peak
        // memory for a ResNet-32 HVP).
        let terms = [
            rhs.tangent.as_ref().map(|tb| (&self.primal, tb)),
            self.tangent.as_ref().map(|ta| (ta, &rhs.primal)),
        ];
        let mut tangent = addend.tangent.clone();
        let mut products = 0;
        for (a, b) in terms.into_iter().flatten() {
            tangent = Some(match &tangent {
                Some(z) => f_add(a, b, z)?,
                None => f(a, b)?,
            });
            products += 1;
        }
        Ok((tangent, products))
    }
}

impl Dual {
    /// `conv2d(x, k) (+ b)` when the input and the kernel both carry tangents: the tangent
    /// `conv(ẋ, k) + conv(x, k̇) (+ ḃ)` as one stacked convolution ([`ops::conv2d_tangent`]);
    /// `None` otherwise (one product or none: the general bilinear rule costs no more).
    fn conv_both_tangents(
        &self,
        kernel: &Self,
        bias: Option<&Self>,
        padding: usize,
        stride: usize,
    ) -> Result<Option<Self>> {
        let (Some(x_dot), Some(k_dot)) = (&self.tangent, &kernel.tangent) else {
            return Ok(None);
        };
        let primal = match bias {
            Some(b) => ops::conv2d_add(&self.primal, &kernel.primal, &b.primal, padding, stride)?,
            None => ops::conv2d(&self.primal, &kernel.primal, padding, stride)?,
        };
        let shift_dot = bias.and_then(|b| b.tangent.as_ref());
        let tangent = ops::conv2d_tangent(
            &self.primal,
            x_dot,
            &kernel.primal,
            k_dot,
            shift_dot,
            padding,
            stride,
        )?;
        Ok(Some(Self {
            primal,
            tangent: Some(tangent),
        }))
    }
}

/// `t` broadcast to `shape` when it differs (a bias tangent meeting a tangent-free input).
fn broadcast_to(t: &Tensor, like: &Tensor) -> CResult<Tensor> {
    if t.shape() == like.shape() {
        Ok(t.clone())
    } else {
        t.broadcast_as(like.shape())
    }
}

impl Value for Dual {
    fn primal(&self) -> &Tensor {
        &self.primal
    }

    fn constant(primal: Tensor) -> Self {
        Self {
            primal,
            tangent: None,
        }
    }

    fn unary<F, J>(&self, f: F, jvp: J) -> Result<Self>
    where
        F: FnOnce(&Tensor) -> CResult<Tensor>,
        J: FnOnce(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>,
    {
        let primal = f(&self.primal)?;
        let tangent = match &self.tangent {
            Some(t) => Some(jvp(&self.primal, &primal, t)?),
            None => None,
        };
        Ok(Self { primal, tangent })
    }

    fn bilinear<F>(&self, rhs: &Self, f: F) -> Result<Self>
    where
        F: Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    {
        let primal = f(&self.primal, &rhs.primal)?;
        let left = match &self.tangent {
            Some(ta) => Some(f(ta, &rhs.primal)?),
            None => None,
        };
        let right = match &rhs.tangent {
            Some(tb) => Some(f(&self.primal, tb)?),
            None => None,
        };
        let tangent = match (left, right) {
            (Some(l), Some(r)) => Some((l + r)?),
            (l, r) => l.or(r),
        };
        Ok(Self { primal, tangent })
    }

    fn conv2d(&self, kernel: &Self, padding: usize, stride: usize) -> Result<Self> {
        if let Some(both) = self.conv_both_tangents(kernel, None, padding, stride)? {
            return Ok(both);
        }
        self.bilinear(kernel, |x, k| ops::conv2d(x, k, padding, stride))
    }

    fn conv2d_bias(
        &self,
        kernel: &Self,
        bias: &Self,
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        if let Some(both) = self.conv_both_tangents(kernel, Some(bias), padding, stride)? {
            return Ok(both);
        }
        // One product's multiply-adds, ignoring the stride: N·H·W·C_out·C_in·k².
        let macs = self.primal.elem_count() * kernel.primal.elem_count()
            / kernel.primal.dim(1).unwrap_or(1).max(1);
        self.bilinear_add(
            kernel,
            bias,
            macs,
            |x, k, z| ops::conv2d_add(x, k, z, padding, stride),
            |x, k| ops::conv2d(x, k, padding, stride),
            |b, like| {
                let channels = b.elem_count();
                b.reshape((1, channels, 1, 1))?.broadcast_as(like.shape())
            },
        )
    }

    fn linear_layer(&self, weight: &Self, bias: &Self) -> Result<Self> {
        let macs = self.primal.elem_count() * weight.primal.dim(0).unwrap_or(1);
        self.bilinear_add(
            weight,
            bias,
            macs,
            ops::matmul_t_add,
            ops::matmul_t,
            |b, like| b.broadcast_as(like.shape()),
        )
    }

    fn add_relu(&self, rhs: &Self) -> Result<Self> {
        let (Some(ta), Some(tb)) = (&self.tangent, &rhs.tangent) else {
            return self.add(rhs)?.relu();
        };
        let sum = self.primal.broadcast_add(&rhs.primal)?;
        let tangent = ops::relu_tangent_sum(ta, tb, &sum)?;
        Ok(Self {
            primal: ops::relu(&sum)?,
            tangent: Some(tangent),
        })
    }

    fn add(&self, rhs: &Self) -> Result<Self> {
        let primal = self.primal.broadcast_add(&rhs.primal)?;
        let tangent = match (&self.tangent, &rhs.tangent) {
            (Some(ta), Some(tb)) => Some(ta.broadcast_add(tb)?),
            (Some(t), None) | (None, Some(t)) => Some(broadcast_to(t, &primal)?),
            (None, None) => None,
        };
        Ok(Self { primal, tangent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn dual(p: &[f64], t: Option<&[f64]>) -> Dual {
        let dev = Device::Cpu;
        Dual::new(
            Tensor::new(p, &dev).unwrap(),
            t.map(|t| Tensor::new(t, &dev).unwrap()),
        )
    }

    fn tangent(d: &Dual) -> Vec<f64> {
        d.tangent.as_ref().unwrap().to_vec1().unwrap()
    }

    /// Each primitive's tangent equals the central difference of its primal along the
    /// tangent, to f64 rounding (derivatives known in closed form, step 1e-6).
    #[test]
    fn tangents_match_central_differences() {
        let x = [0.3, -1.2, 2.0];
        let t = [0.7, 0.1, -0.4];
        let h = 1e-6;
        type Op = Box<dyn Fn(&Dual) -> Dual>;
        let ops: Vec<(&str, Op)> = vec![
            ("tanh", Box::new(|d: &Dual| d.tanh().unwrap())),
            ("square", Box::new(|d: &Dual| d.square().unwrap())),
            (
                "rsqrt",
                Box::new(|d: &Dual| d.square().unwrap().rsqrt(0.5).unwrap()),
            ),
            (
                "log_softmax",
                Box::new(|d: &Dual| d.log_softmax(0).unwrap()),
            ),
            ("softmax", Box::new(|d: &Dual| d.softmax(0).unwrap())),
            (
                "normalize",
                Box::new(|d: &Dual| d.normalize(0, 1e-12).unwrap()),
            ),
            ("mul_self", Box::new(|d: &Dual| d.mul(d).unwrap())),
        ];
        for (name, op) in ops {
            let exact = tangent(&op(&dual(&x, Some(&t))));
            let plus: Vec<f64> = x.iter().zip(&t).map(|(a, b)| a + h * b).collect();
            let minus: Vec<f64> = x.iter().zip(&t).map(|(a, b)| a - h * b).collect();
            let fp: Vec<f64> = op(&dual(&plus, None)).primal.to_vec1().unwrap();
            let fm: Vec<f64> = op(&dual(&minus, None)).primal.to_vec1().unwrap();
            for i in 0..3 {
                let fd = (fp[i] - fm[i]) / (2.0 * h);
                assert!(
                    (fd - exact[i]).abs() <= 1e-8 * (1.0 + fd.abs()),
                    "{name}[{i}]: tangent {} vs central difference {fd}",
                    exact[i]
                );
            }
        }
    }

    /// A tangent-free operand contributes nothing; a lone bias tangent is broadcast.
    #[test]
    fn zero_tangents_are_skipped_and_broadcast() {
        let dev = Device::Cpu;
        let a = Dual::constant(Tensor::ones((2, 3), DType::F64, &dev).unwrap());
        let b = dual(&[1.0, 2.0, 3.0], Some(&[1.0, 2.0, 3.0]));
        let c = a.mul(&a).unwrap();
        assert!(c.tangent.is_none());
        let s = a.add(&b).unwrap();
        let st: Vec<Vec<f64>> = s.tangent.unwrap().to_vec2().unwrap();
        assert_eq!(st, vec![vec![1.0, 2.0, 3.0]; 2]);
    }

    /// The fused `conv2d_bias` has the tangent of `conv2d` followed by the broadcast add,
    /// for every combination of present tangents (to f64 rounding).
    #[test]
    fn conv_bias_tangent_matches_conv_then_add() {
        let dev = Device::Cpu;
        let t = |dims: &[usize], seed: u64| {
            let n: usize = dims.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|i| ((i as u64 * 37 + seed * 11) % 17) as f64 / 8.0 - 1.0)
                .collect();
            Tensor::from_vec(v, dims, &dev).unwrap()
        };
        let (x, k, b) = (t(&[2, 3, 5, 5], 1), t(&[4, 3, 3, 3], 2), t(&[4], 3));
        let (tx, tk, tb) = (t(&[2, 3, 5, 5], 4), t(&[4, 3, 3, 3], 5), t(&[4], 6));
        for mask in 0..8u8 {
            let pick = |bit: u8, v: &Tensor| (mask & bit != 0).then(|| v.clone());
            let xd = Dual::new(x.clone(), pick(1, &tx));
            let kd = Dual::new(k.clone(), pick(2, &tk));
            let bd = Dual::new(b.clone(), pick(4, &tb));
            let fused = xd.conv2d_bias(&kd, &bd, 1, 2).unwrap();
            let plain = xd
                .conv2d(&kd, 1, 2)
                .unwrap()
                .add(&bd.reshape(&[1, 4, 1, 1]).unwrap())
                .unwrap();
            assert_eq!(
                fused.tangent.is_some(),
                plain.tangent.is_some(),
                "mask {mask}"
            );
            let diff = |a: &Tensor, b: &Tensor| -> f64 {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            assert!(diff(&fused.primal, &plain.primal) < 1e-13);
            if let (Some(f), Some(p)) = (&fused.tangent, &plain.tangent) {
                assert!(
                    diff(f, &p.broadcast_as(f.shape()).unwrap()) < 1e-13,
                    "mask {mask}"
                );
            }
        }
    }
}
