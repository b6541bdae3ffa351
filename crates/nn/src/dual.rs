//! Dual values: a primal tensor with an optional forward-mode tangent.

use candle_core::{Result as CResult, Tensor};

use crate::error::Result;
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
}
