//! Cosine classifier of LDAM (Cao et al. 2019), the reference code's `NormedLinear`.
//!
//! `y = normalize(x, dim=1) · normalize(W, dim=0)` with `x: (N, in)`, `W: (in, out)`
//! (`weight`, stored transposed relative to `nn.Linear`, as the reference code does),
//! `y: (N, out)`, no bias; `normalize(z) = z / max(‖z‖₂, 1e-12)` as `F.normalize`.
//! Logits are cosines in `[−1, 1]`; LDAM's scale `s` turns them into usable logits.
//!
//! Tangent: `normalize` is smooth away from zero ([`Value::normalize`]: `ż/‖z‖ − z (z·ż)/‖z‖³`),
//! then the bilinear rule of the product.
//!
//! Init as the reference: `W ~ U(−1, 1)`, then every column renormalized to unit norm
//! (`uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)`).

use crate::error::Result;
use crate::init;
use crate::store::{Builder, Ctx, ParamId};
use crate::value::Value;

/// `eps` of PyTorch's `F.normalize`.
const EPS: f64 = 1e-12;

/// `NormedLinear(in, out)`; parameter `{name}.weight (in, out)`.
#[derive(Clone, Debug)]
pub(crate) struct NormedLinear {
    weight: ParamId,
}

impl NormedLinear {
    /// Registers `{name}.weight (in, out)` with unit-norm columns.
    pub(crate) fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        let mut w = init::uniform(b.rng(), inputs * outputs, 1.0);
        for col in 0..outputs {
            let norm = (0..inputs)
                .map(|r| w[r * outputs + col].powi(2))
                .sum::<f64>()
                .sqrt();
            for r in 0..inputs {
                w[r * outputs + col] /= norm;
            }
        }
        let weight = b.param(format!("{name}.weight"), &[inputs, outputs], w)?;
        Ok(Self { weight })
    }

    /// Cosine logits of `x: (N, in)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        let w = ctx.param(self.weight).normalize(0, EPS)?;
        x.normalize(1, EPS)?.matmul(&w)
    }
}
