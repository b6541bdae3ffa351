//! Losses of the long-tail literature, each written once over [`Value`] so that the same
//! code yields the loss and its tangent (hence its Hessian).
//!
//! All take logits `z: (N, C)` and labels `y: (N,)` (u32) and reduce as PyTorch:
//! - CE: `ℓ_i = −log softmax(z_i)_{y_i}`, `L = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}` (`w = 1`
//!   without class weights: the plain mean);
//! - LDAM (Cao et al. 2019): CE of `s·(z − m_{y}·onehot(y))`, margins from
//!   [`ldam_margins`](crate::ldam_margins), defaults `max_m = 0.5`, `s = 30`;
//! - VS (Kini et al. 2021): CE of `z/Δ + ι` with `(Δ, ι)` from
//!   [`vs_adjustments`](crate::vs_adjustments), defaults `γ = 0.3`, `τ = 1`; logit
//!   adjustment (`la`) is `γ = 0`;
//! - focal (Lin et al. 2017), as the LDAM-DRW reference `FocalLoss`: the class weights act
//!   inside, `ℓ'_i = w_{y_i} ℓ_i` (`F.cross_entropy(.., weight, reduction='none')`), then
//!   `L = mean_i (1 − e^{−ℓ'_i})^γ ℓ'_i` — a plain mean, not normalized by `Σ w`; default
//!   `γ = 1`.
//!
//! Tangents: `log_softmax` per [`Value::log_softmax`]; the margin, scale, `Δ`, `ι`,
//! one-hot picking and weighted means are linear or constant; the focal map has
//! `d/dℓ (1 − p)^γ ℓ = (1 − p)^γ + γ p ℓ (1 − p)^(γ−1)`, `p = e^{−ℓ}`.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::class_stats::{ldam_margins, vs_adjustments};
use crate::error::{Error, Result};
use crate::value::Value;

/// LDAM's largest margin, reference default.
pub const LDAM_MAX_M: f64 = 0.5;
/// LDAM's logit scale, reference default.
pub const LDAM_S: f64 = 30.0;
/// VS loss `γ` default (Kini et al. 2021, CIFAR).
pub const VS_GAMMA: f64 = 0.3;
/// VS loss / logit-adjustment `τ` default.
pub const VS_TAU: f64 = 1.0;
/// Focal loss `γ`, LDAM-DRW reference default.
pub const FOCAL_GAMMA: f64 = 1.0;

/// Which loss, with its hyperparameters; parses from and prints as `ce`,
/// `ldam:max_m=0.5,s=30`, `vs:gamma=0.3,tau=1`, `la[:tau=T]` (= VS with `γ = 0`),
/// `focal:gamma=1`; a bare name takes the defaults. The text form is also the serde form.
///
/// ```
/// use saddlescope_nn::LossSpec;
/// let spec: LossSpec = "ldam".parse()?;
/// assert_eq!(spec, LossSpec::Ldam { max_m: 0.5, s: 30.0 });
/// assert_eq!(spec.to_string(), "ldam:max_m=0.5,s=30");
/// assert_eq!("la".parse::<LossSpec>()?, LossSpec::Vs { gamma: 0.0, tau: 1.0 });
/// # Ok::<(), saddlescope_nn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LossSpec {
    /// Cross-entropy.
    Ce,
    /// Label-distribution-aware margin loss.
    Ldam {
        /// Largest class margin.
        max_m: f64,
        /// Logit scale.
        s: f64,
    },
    /// Vector-scaling loss (logit adjustment when `gamma = 0`).
    Vs {
        /// Exponent of the multiplicative adjustment.
        gamma: f64,
        /// Scale of the additive adjustment.
        tau: f64,
    },
    /// Focal loss.
    Focal {
        /// Focusing exponent: 0 or at least 1 (below 1 the Hessian is unbounded near
        /// `ℓ = 0`).
        gamma: f64,
    },
}

impl LossSpec {
    fn invalid(&self, reason: &str) -> Error {
        Error::LossSpec {
            spec: self.to_string(),
            reason: reason.to_string(),
        }
    }

    fn validate(self) -> Result<Self> {
        let problem = match &self {
            LossSpec::Ce => None,
            LossSpec::Ldam { max_m, s } => {
                (!(max_m.is_finite() && *max_m >= 0.0 && s.is_finite() && *s > 0.0))
                    .then_some("ldam needs finite max_m >= 0 and s > 0")
            }
            LossSpec::Vs { gamma, tau } => {
                (!(gamma.is_finite() && tau.is_finite())).then_some("vs needs finite gamma and tau")
            }
            LossSpec::Focal { gamma } => (!(*gamma == 0.0 || (gamma.is_finite() && *gamma >= 1.0)))
                .then_some("focal gamma must be 0 or at least 1"),
        };
        match problem {
            Some(reason) => Err(self.invalid(reason)),
            None => Ok(self),
        }
    }

    /// Builds the loss for training-set class counts `class_counts` (`C` = its length)
    /// with optional per-class weights (e.g. [`drw_weights`](crate::drw_weights)).
    ///
    /// Errors: empty or zero counts (LDAM/VS need every `n_c > 0`; CE and focal only need
    /// `C`), weights of the wrong length or not finite and positive.
    pub fn build(&self, class_counts: &[usize], weights: Option<&[f64]>) -> Result<Loss> {
        let spec = self.clone().validate()?;
        let classes = class_counts.len();
        if classes < 2 {
            return Err(Error::ClassStats {
                reason: format!("{classes} class counts given, need at least 2"),
            });
        }
        if let Some(w) = weights {
            if w.len() != classes {
                return Err(Error::ClassStats {
                    reason: format!("{} class weights for {classes} classes", w.len()),
                });
            }
            if let Some(c) = w.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(Error::ClassStats {
                    reason: format!(
                        "class weight {} of class {c} is not finite and positive",
                        w[c]
                    ),
                });
            }
        }
        let adjust = match spec {
            LossSpec::Ce | LossSpec::Focal { .. } => Adjust::None,
            LossSpec::Ldam { max_m, s } => Adjust::Margins {
                margins: ldam_margins(class_counts, max_m)?,
                s,
            },
            LossSpec::Vs { gamma, tau } => {
                let (delta, iota) = vs_adjustments(class_counts, gamma, tau)?;
                Adjust::Vs {
                    inv_delta: delta.iter().map(|d| 1.0 / d).collect(),
                    iota,
                }
            }
        };
        Ok(Loss {
            spec,
            classes,
            weights: weights.map(<[f64]>::to_vec),
            adjust,
        })
    }
}

fn parse_params(text: &str, args: Option<&str>, keys: &[(&str, f64)]) -> Result<Vec<f64>> {
    let mut values: Vec<f64> = keys.iter().map(|(_, v)| *v).collect();
    let bad = |reason: String| Error::LossSpec {
        spec: text.to_string(),
        reason,
    };
    for pair in args.into_iter().flat_map(|a| a.split(',')) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
        let slot = keys
            .iter()
            .position(|(k, _)| *k == key.trim())
            .ok_or_else(|| bad(format!("unknown parameter {key:?}")))?;
        values[slot] = value
            .trim()
            .parse()
            .map_err(|_| bad(format!("{value:?} is not a number")))?;
    }
    Ok(values)
}

impl FromStr for LossSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, args) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let spec = match name {
            "ce" if args.is_none() => LossSpec::Ce,
            "ldam" => {
                let v = parse_params(s, args, &[("max_m", LDAM_MAX_M), ("s", LDAM_S)])?;
                LossSpec::Ldam {
                    max_m: v[0],
                    s: v[1],
                }
            }
            "vs" => {
                let v = parse_params(s, args, &[("gamma", VS_GAMMA), ("tau", VS_TAU)])?;
                LossSpec::Vs {
                    gamma: v[0],
                    tau: v[1],
                }
            }
            "la" => {
                let v = parse_params(s, args, &[("tau", VS_TAU)])?;
                LossSpec::Vs {
                    gamma: 0.0,
                    tau: v[0],
                }
            }
            "focal" => {
                let v = parse_params(s, args, &[("gamma", FOCAL_GAMMA)])?;
                LossSpec::Focal { gamma: v[0] }
            }
            _ => {
                return Err(Error::LossSpec {
                    spec: s.to_string(),
                    reason: "unknown loss".to_string(),
                })
            }
        };
        spec.validate()
    }
}

impl fmt::Display for LossSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossSpec::Ce => write!(f, "ce"),
            LossSpec::Ldam { max_m, s } => write!(f, "ldam:max_m={max_m},s={s}"),
            LossSpec::Vs { gamma, tau } => write!(f, "vs:gamma={gamma},tau={tau}"),
            LossSpec::Focal { gamma } => write!(f, "focal:gamma={gamma}"),
        }
    }
}

impl TryFrom<String> for LossSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<LossSpec> for String {
    fn from(spec: LossSpec) -> String {
        spec.to_string()
    }
}

/// The logit transform before cross-entropy.
#[derive(Clone, Debug)]
enum Adjust {
    None,
    Margins { margins: Vec<f64>, s: f64 },
    Vs { inv_delta: Vec<f64>, iota: Vec<f64> },
}

/// A loss ready to evaluate: spec, class constants and optional class weights.
#[derive(Clone, Debug)]
pub struct Loss {
    spec: LossSpec,
    classes: usize,
    weights: Option<Vec<f64>>,
    adjust: Adjust,
}

/// Labels checked against the logits, on the host and as per-sample constants.
struct Targets {
    onehot: Tensor,
    sample_weights: Option<Tensor>,
    total_weight: f64,
}

impl Loss {
    /// The loss's specification.
    pub fn spec(&self) -> &LossSpec {
        &self.spec
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The per-class weights, if any.
    pub fn weights(&self) -> Option<&[f64]> {
        self.weights.as_deref()
    }

    fn labels_host(&self, labels: &Tensor, n: Option<usize>) -> Result<Vec<u32>> {
        if labels.dtype() != DType::U32 {
            return Err(Error::Dtype {
                what: "labels",
                expected: DType::U32,
                got: labels.dtype(),
            });
        }
        if labels.rank() != 1 || n.is_some_and(|n| labels.dim(0).ok() != Some(n)) {
            return Err(Error::Shape {
                what: "labels",
                expected: n.map_or("(N,)".to_string(), |n| {
                    format!("({n},) matching the logits")
                }),
                got: labels.dims().to_vec(),
            });
        }
        let host: Vec<u32> = labels.to_vec1()?;
        if let Some((index, &label)) = host
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= self.classes)
        {
            return Err(Error::LabelOutOfRange {
                index,
                label,
                classes: self.classes,
            });
        }
        Ok(host)
    }

    fn targets(&self, logits: &Tensor, labels: &Tensor) -> Result<Targets> {
        let dims = logits.dims();
        if dims.len() != 2 || dims[1] != self.classes || dims[0] == 0 {
            return Err(Error::Shape {
                what: "logits",
                expected: format!("(N >= 1, {})", self.classes),
                got: dims.to_vec(),
            });
        }
        let n = dims[0];
        let host = self.labels_host(labels, Some(n))?;
        let (dtype, device) = (logits.dtype(), logits.device());
        let mut onehot = vec![0.0; n * self.classes];
        for (i, &y) in host.iter().enumerate() {
            onehot[i * self.classes + y as usize] = 1.0;
        }
        let sample_weights: Option<Vec<f64>> = self
            .weights
            .as_ref()
            .map(|w| host.iter().map(|&y| w[y as usize]).collect());
        let total_weight = sample_weights.as_ref().map_or(n as f64, |w| w.iter().sum());
        Ok(Targets {
            onehot: to_tensor(onehot, &[n, self.classes], dtype, device)?,
            sample_weights: sample_weights
                .map(|w| to_tensor(w, &[n], dtype, device))
                .transpose()?,
            total_weight,
        })
    }

    /// The batch's share in a sample-set mean: the denominator of this loss's PyTorch
    /// reduction (`Σ_i w_{y_i}`, or `N` when unweighted and for focal). Weighting batch
    /// losses by it makes the mean over batches equal the loss of their union.
    pub fn batch_weight(&self, labels: &Tensor) -> Result<f64> {
        let host = self.labels_host(labels, None)?;
        Ok(match (&self.weights, &self.spec) {
            (Some(w), LossSpec::Ce | LossSpec::Ldam { .. } | LossSpec::Vs { .. }) => {
                host.iter().map(|&y| w[y as usize]).sum()
            }
            _ => host.len() as f64,
        })
    }

    /// The scalar loss of `logits: (N, C)` against `labels: (N,)` u32, reduced as PyTorch.
    /// On [`Dual`](crate::Dual) logits the result's tangent is the loss's directional
    /// derivative.
    ///
    /// Errors name the bad tensor: logits not `(N ≥ 1, C)`, labels not u32 `(N,)`, or a
    /// label `≥ C`.
    pub fn compute<V: Value>(&self, logits: &V, labels: &Tensor) -> Result<V> {
        let t = self.targets(logits.primal(), labels)?;
        let (dtype, device) = (logits.primal().dtype(), logits.primal().device());
        let (n, c) = (t.onehot.dim(0)?, self.classes);
        let z = match &self.adjust {
            Adjust::None => logits.clone(),
            Adjust::Margins { margins, s } => {
                let row_margin =
                    t.onehot
                        .broadcast_mul(&to_tensor(margins.clone(), &[1, c], dtype, device)?)?;
                logits
                    .add(&V::constant(row_margin.affine(-1.0, 0.0)?))?
                    .scale(*s)?
            }
            Adjust::Vs { inv_delta, iota } => logits
                .mul(&V::constant(to_tensor(
                    inv_delta.clone(),
                    &[1, c],
                    dtype,
                    device,
                )?))?
                .add(&V::constant(to_tensor(
                    iota.clone(),
                    &[1, c],
                    dtype,
                    device,
                )?))?,
        };
        let onehot = &t.onehot;
        let nll = z
            .log_softmax(1)?
            .linear(|ls| ls.mul(onehot)?.sum(1)?.neg())?;
        match (&self.spec, &t.sample_weights) {
            (LossSpec::Focal { gamma }, w) => {
                let weighted = match w {
                    Some(w) => nll.linear(|l| l.mul(w))?,
                    None => nll,
                };
                let focal = if *gamma == 0.0 {
                    weighted
                } else {
                    focal_map(&weighted, *gamma)?
                };
                focal.linear(|f| f.mean_all())
            }
            (_, Some(w)) => nll.linear(|l| l.mul(w)?.sum_all()?.affine(1.0 / t.total_weight, 0.0)),
            (_, None) => nll.linear(|l| l.sum_all()?.affine(1.0 / n as f64, 0.0)),
        }
    }
}

/// `f(ℓ) = (1 − e^{−ℓ})^γ ℓ` elementwise, tangent `((1 − p)^γ + γ p ℓ (1 − p)^(γ−1))·ℓ̇`.
fn focal_map<V: Value>(loss: &V, gamma: f64) -> Result<V> {
    loss.unary(
        |l| l.neg()?.exp()?.affine(-1.0, 1.0)?.powf(gamma)?.mul(l),
        |l, _, t| {
            let p = l.neg()?.exp()?;
            let q = p.affine(-1.0, 1.0)?;
            let slope = q
                .powf(gamma)?
                .add(&p.mul(l)?.mul(&q.powf(gamma - 1.0)?)?.affine(gamma, 0.0)?)?;
            t.mul(&slope)
        },
    )
}

fn to_tensor(values: Vec<f64>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dual;

    fn loss_value(
        spec: &str,
        counts: &[usize],
        weights: Option<&[f64]>,
        z: &[f64],
        y: &[u32],
    ) -> f64 {
        let dev = Device::Cpu;
        let c = counts.len();
        let logits = Tensor::from_slice(z, (y.len(), c), &dev).unwrap();
        let labels = Tensor::new(y, &dev).unwrap();
        let loss = spec
            .parse::<LossSpec>()
            .unwrap()
            .build(counts, weights)
            .unwrap();
        loss.compute(&logits, &labels).unwrap().to_scalar().unwrap()
    }

    fn log_softmax(z: &[f64]) -> Vec<f64> {
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect()
    }

    const Z: [f64; 6] = [0.2, -0.5, 1.1, 0.7, 0.3, -0.9];
    const Y: [u32; 2] = [2, 0];
    const COUNTS: [usize; 3] = [100, 30, 4];
    const W: [f64; 3] = [0.5, 1.0, 1.5];

    /// Each loss equals its formula evaluated by hand in f64.
    #[test]
    fn values_match_the_formulas() {
        let ce = |z: &[f64]| -> Vec<f64> {
            (0..2)
                .map(|i| -log_softmax(&z[3 * i..3 * i + 3])[Y[i] as usize])
                .collect()
        };
        let l = ce(&Z);
        let tol = 1e-14;
        assert!((loss_value("ce", &COUNTS, None, &Z, &Y) - (l[0] + l[1]) / 2.0).abs() < tol);
        let weighted = (W[2] * l[0] + W[0] * l[1]) / (W[2] + W[0]);
        assert!((loss_value("ce", &COUNTS, Some(&W), &Z, &Y) - weighted).abs() < tol);

        let m = ldam_margins(&COUNTS, 0.5).unwrap();
        let mut zl = Z;
        zl[2] -= m[2];
        zl[3] -= m[0];
        let zl: Vec<f64> = zl.iter().map(|v| 30.0 * v).collect();
        let l = ce(&zl);
        let want = (W[2] * l[0] + W[0] * l[1]) / (W[2] + W[0]);
        assert!((loss_value("ldam", &COUNTS, Some(&W), &Z, &Y) - want).abs() < tol);

        let (delta, iota) = vs_adjustments(&COUNTS, 0.3, 1.0).unwrap();
        let zv: Vec<f64> = Z
            .iter()
            .enumerate()
            .map(|(k, v)| v / delta[k % 3] + iota[k % 3])
            .collect();
        let l = ce(&zv);
        assert!((loss_value("vs", &COUNTS, None, &Z, &Y) - (l[0] + l[1]) / 2.0).abs() < tol);

        let l = ce(&Z);
        let lw = [W[2] * l[0], W[0] * l[1]];
        let focal: f64 = lw.iter().map(|v| (1.0 - (-v).exp()) * v).sum::<f64>() / 2.0;
        assert!((loss_value("focal", &COUNTS, Some(&W), &Z, &Y) - focal).abs() < tol);
    }

    /// The focal map's tangent is its derivative (central differences, f64).
    #[test]
    fn focal_tangent_is_the_derivative() {
        for gamma in [1.0, 2.0, 2.5] {
            let l = [0.0, 0.3, 2.0];
            let dual = Dual::new(
                Tensor::new(&l[..], &Device::Cpu).unwrap(),
                Some(Tensor::new(&[1.0f64; 3][..], &Device::Cpu).unwrap()),
            );
            let d: Vec<f64> = focal_map(&dual, gamma)
                .unwrap()
                .tangent
                .unwrap()
                .to_vec1()
                .unwrap();
            for (k, &x) in l.iter().enumerate() {
                let f = |v: f64| (1.0 - (-v).exp()).powf(gamma) * v;
                let h = 1e-6;
                let fd = if x == 0.0 {
                    (f(1e-8) - f(0.0)) / 1e-8
                } else {
                    (f(x + h) - f(x - h)) / (2.0 * h)
                };
                assert!(
                    (fd - d[k]).abs() < 1e-6,
                    "gamma {gamma} at {x}: {} vs {fd}",
                    d[k]
                );
            }
        }
    }

    #[test]
    fn specs_round_trip_and_reject_bad_input() {
        for text in [
            "ce",
            "ldam:max_m=0.5,s=30",
            "vs:gamma=0.3,tau=1",
            "focal:gamma=1",
            "focal:gamma=0",
        ] {
            let spec: LossSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<LossSpec>(&json).unwrap(), spec);
        }
        assert_eq!(
            "vs".parse::<LossSpec>().unwrap(),
            LossSpec::Vs {
                gamma: VS_GAMMA,
                tau: VS_TAU
            }
        );
        for (text, needle) in [
            ("hinge", "unknown loss"),
            ("ldam:m=1", "unknown parameter"),
            ("ldam:s=-1", "s > 0"),
            ("focal:gamma=0.5", "0 or at least 1"),
            ("vs:gamma=x", "not a number"),
        ] {
            let err = text.parse::<LossSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn shape_and_label_errors_name_the_tensor() {
        let dev = Device::Cpu;
        let loss = LossSpec::Ce.build(&COUNTS, None).unwrap();
        let logits = Tensor::zeros((2, 4), DType::F64, &dev).unwrap();
        let labels = Tensor::new(&[0u32, 1], &dev).unwrap();
        let err = loss.compute(&logits, &labels).unwrap_err().to_string();
        assert!(
            err.contains("logits has shape [2, 4], expected (N >= 1, 3)"),
            "{err}"
        );
        let logits = Tensor::zeros((2, 3), DType::F64, &dev).unwrap();
        let err = loss
            .compute(&logits, &Tensor::new(&[0i64, 1], &dev).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("labels has dtype I64"), "{err}");
        let err = loss
            .compute(&logits, &Tensor::new(&[0u32, 1, 2], &dev).unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("labels has shape [3], expected (2,)"),
            "{err}"
        );
        let err = loss
            .compute(&logits, &Tensor::new(&[0u32, 3], &dev).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("label 3 at position 1"), "{err}");
        let err = LossSpec::Ce
            .build(&COUNTS, Some(&[1.0, 2.0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 class weights for 3 classes"), "{err}");
    }
}
