//! The verdict on a class's loss at the analysed weights and what it rests on: the class's
//! first-order context ([`FirstOrder`]: loss, gradient, slope along u_min and the quadratic
//! model's terms at a radius), the model's health over its training split ([`ModelHealth`])
//! and the thresholds ([`VerdictRule`]). `saddlescope_analysis` computes them; they are
//! stored here so that figures and reports read them without candle.
//!
//! A negative Hessian eigenvalue makes a saddle only near a stationary point (Dauphin et al.
//! 2014; Nesterov & Polyak 2006; Jin et al. 2017), and a class's loss at weights trained on
//! all classes is in general not stationary: the verdict says how far it is.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// What a class-wise Hessian and gradient say about the class's loss at the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Significant negative curvature (λ_min < 0 beyond its bound, |λ_min|/λ_max at least the
    /// saddle ratio) that dominates the first-order term of the class loss's quadratic model:
    /// the weights are near a saddle point of the class's loss.
    Saddle,
    /// No significant negative curvature: not a saddle.
    MinimumLike,
    /// Significant negative curvature, but the gradient term dominates: the weights are not
    /// near a stationary point of the class's loss, so the curvature does not make a saddle.
    NotStationary,
    /// The model fails its health check (untrained or diverged), or the numbers the verdict
    /// needs are missing (files written before verdicts existed) or not finite.
    #[default]
    Undetermined,
}

impl VerdictKind {
    /// Every verdict, in the order reports list them.
    pub const ALL: [VerdictKind; 4] = [
        VerdictKind::Saddle,
        VerdictKind::NotStationary,
        VerdictKind::MinimumLike,
        VerdictKind::Undetermined,
    ];

    /// The JSON and CSV form: `saddle`, `minimum_like`, `not_stationary`, `undetermined`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Saddle => "saddle",
            VerdictKind::MinimumLike => "minimum_like",
            VerdictKind::NotStationary => "not_stationary",
            VerdictKind::Undetermined => "undetermined",
        }
    }

    /// The form for prose and figures: `saddle`, `minimum-like`, `not stationary`,
    /// `undetermined`.
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::Saddle => "saddle",
            VerdictKind::MinimumLike => "minimum-like",
            VerdictKind::NotStationary => "not stationary",
            VerdictKind::Undetermined => "undetermined",
        }
    }
}

impl fmt::Display for VerdictKind {
    /// The JSON form ([`VerdictKind::as_str`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason a file written before verdicts existed gets with its `undetermined` verdict.
pub(crate) const LEGACY_REASON: &str =
    "written before saddlescope judged stationarity: run analyze again for a verdict";

/// The class's loss around the weights to second order, along the two directions that tell
/// a saddle from a slope: the gradient g and the eigenvector u_min of λ_min. All on the
/// Hessian's parameter block, at the radius r of the landscape's u_min curve
/// (`saddlescope_analysis::default_range(λ_min, loss)`: ½|λ_min|r² is half the loss, within
/// limits), so the verdict and `landscape`'s figure look at the same neighbourhood.
///
/// Trust-region methods certify a step of the quadratic model `m(δ) = g·δ + ½δᵀHδ` within
/// radius r by two decreases (Moré & Sorensen 1983; Conn, Gould & Toint 2000, §6.3 and
/// §6.6): a first-order one, the Cauchy step along −g ([`gradient_decrease`]), and a
/// second-order one, the eigen step along u_min ([`curvature_term`] = ½|λ_min|r²). Near a
/// saddle point the second dominates; on a slope the first does, or the slope along u_min
/// itself ([`slope_term`]) outweighs its curvature.
///
/// [`gradient_decrease`]: Self::gradient_decrease
/// [`curvature_term`]: Self::curvature_term
/// [`slope_term`]: Self::slope_term
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirstOrder {
    /// The class loss over the analysed samples (the loss whose Hessian this is).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Share of the analysed samples that the model classifies correctly (eval mode).
    pub accuracy: f64,
    /// ‖g‖, the norm of the class loss's gradient.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// κ_g = ĝᵀHĝ for ĝ = g/‖g‖: the curvature along the gradient (0 when g = 0).
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_curvature: f64,
    /// |g·u_min|, the slope along the eigenvector of λ_min (whose sign is arbitrary;
    /// downhill it is −|g·u_min|).
    #[serde(deserialize_with = "nan_if_null")]
    pub slope_min: f64,
    /// The radius r.
    #[serde(deserialize_with = "nan_if_null")]
    pub radius: f64,
    /// What the gradient alone lowers the model by within r, stopped by positive curvature
    /// along it and not helped by negative: ‖g‖²/(2κ_g) when κ_g > 0 and the minimum
    /// ‖g‖/κ_g along −g lies within r, else ‖g‖·r − ½max(κ_g, 0)·r².
    #[serde(deserialize_with = "nan_if_null")]
    pub gradient_decrease: f64,
    /// |g·u_min|·r: the first-order part of the model's change along u_min at r.
    #[serde(deserialize_with = "nan_if_null")]
    pub slope_term: f64,
    /// ½|λ_min|·r²: the second-order part of the model's change along u_min at r, what the
    /// negative curvature alone lowers the model by.
    #[serde(deserialize_with = "nan_if_null")]
    pub curvature_term: f64,
}

impl FirstOrder {
    /// How many times first-order effects outweigh the negative curvature: the larger of
    /// `gradient_decrease` and `slope_term`, over `curvature_term`. At most 1 means the
    /// negative curvature lowers the model at r by at least as much as the gradient does,
    /// and that the top of the model's parabola along u_min, |g·u_min|/|λ_min| away, lies
    /// within r/2. ∞ when λ_min = 0.
    pub fn gradient_ratio(&self) -> f64 {
        self.gradient_decrease.max(self.slope_term) / self.curvature_term
    }

    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        [
            self.loss,
            self.accuracy,
            self.grad_norm,
            self.grad_curvature,
            self.slope_min,
            self.radius,
            self.gradient_decrease,
            self.slope_term,
            self.curvature_term,
        ]
        .iter()
        .all(|x| x.is_finite())
    }
}

/// Whether the model looks trained, from [`ModelHealth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Better than chance by the skill threshold in both balanced accuracy and loss.
    Trained,
    /// Balanced train accuracy or loss within the skill threshold of a predictor that learnt
    /// nothing.
    Untrained,
    /// The train loss or its gradient is not finite, or the loss is far above a uniform
    /// predictor's.
    Diverged,
}

impl HealthStatus {
    /// `trained`, `untrained` or `diverged`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Trained => "trained",
            HealthStatus::Untrained => "untrained",
            HealthStatus::Diverged => "diverged",
        }
    }
}

/// How well the model fits its training split, computed once per analysis at the analysed
/// weights (in the analysis's dtype, eval-mode BN, the analysed loss on the Hessian's
/// parameter block). Checkpoints record only test metrics, and a training log's loss is a
/// running mean over an epoch's augmented batches, not the loss at the final weights: so
/// both are computed here (one gradient pass over the training split).
///
/// Balanced (class-averaged) numbers are what the thresholds read: whatever the imbalance,
/// a constant predictor has balanced accuracy 1/C and a uniform one balanced loss ln C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHealth {
    /// Number of classes C.
    pub classes: usize,
    /// Samples of the training split.
    pub samples: usize,
    /// Mean loss over the training split's samples.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Accuracy over the training split's samples.
    pub accuracy: f64,
    /// Mean over classes of the class's mean loss.
    #[serde(deserialize_with = "nan_if_null")]
    pub balanced_loss: f64,
    /// Mean over classes of the class's accuracy.
    pub balanced_accuracy: f64,
    /// ‖∇L‖ of the loss over the whole training split: near 0 at a stationary point of the
    /// training objective without weight decay (with weight decay λ_wd, ∇L = −λ_wd·w there).
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Mean loss of each class over its training samples (`null` for a class without any).
    #[serde(deserialize_with = "nan_if_null_vec")]
    pub class_loss: Vec<f64>,
    /// Accuracy of each class over its training samples (`null` for a class without any).
    #[serde(deserialize_with = "nan_if_null_vec")]
    pub class_accuracy: Vec<f64>,
    /// The judgement of these numbers under [`VerdictRule`].
    pub status: HealthStatus,
    /// Why, in words, with the numbers.
    pub reason: String,
}

/// Default of [`VerdictRule::max_gradient_ratio`]: 1, where the first-order effects and the
/// negative curvature weigh the same ([`FirstOrder::gradient_ratio`]).
///
/// Source: trust-region theory certifies a step by the larger of two decreases of the
/// model, the Cauchy (first-order) one and the eigen (second-order) one (Conn, Gould &
/// Toint 2000, "Trust-Region Methods", §6.6; Moré & Sorensen 1983); which of the two is
/// larger tells a first-order regime from a second-order one, the distinction that defines
/// an approximate second-order stationary point (Nesterov & Polyak 2006, "Cubic
/// regularization of Newton method and its global performance", Math. Program. 108; Jin et
/// al. 2017, "How to Escape Saddle Points Efficiently", ICML, Def. 4: a strict saddle has
/// ‖∇f‖ ≤ ε with λ_min < −√(ρε)). 1 is where the two are equal; along u_min it puts the top
/// of the model's parabola at r/2.
pub const DEFAULT_MAX_GRADIENT_RATIO: f64 = 1.0;

/// Default of [`VerdictRule::min_skill`]: 0.2.
///
/// Skill is the share of the way from a predictor that learnt nothing to a perfect one:
/// `(a − 1/C)/(1 − 1/C)` for the balanced accuracy a (Cohen's κ with chance agreement 1/C)
/// and `1 − L/ln C` for the balanced loss L (McFadden's pseudo-R² with the uniform
/// predictor as the null model). Landis & Koch (1977, "The measurement of observer
/// agreement for categorical data", Biometrics 33) call κ ≤ 0.2 "slight" agreement: a model
/// that covers no more of the way has not learnt its task. A classifier whose logits are
/// cosines (a normed linear head) analysed with plain CE has its loss skill capped near
/// 0.2 for C = 100: lower the threshold or analyse its training loss.
pub const DEFAULT_MIN_SKILL: f64 = 0.2;

/// Default of [`VerdictRule::diverged_loss_ratio`]: 10.
///
/// ln C is the loss of a uniform predictor, and a freshly initialised network is within a
/// few percent of it (its logits start small: He/LeCun initialisation); a loss ten times
/// higher means the model puts probability below C⁻¹⁰ on the right class on average, which
/// neither initialisation nor training produces: the weights have blown up.
pub const DEFAULT_DIVERGED_LOSS_RATIO: f64 = 10.0;

/// The verdict's thresholds besides the saddle ratio (`saddlescope_analysis::SaddleRule`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictRule {
    /// Largest [`FirstOrder::gradient_ratio`] at which significant negative curvature still
    /// makes a saddle; above it the class is [`VerdictKind::NotStationary`]
    /// ([`DEFAULT_MAX_GRADIENT_RATIO`]).
    pub max_gradient_ratio: f64,
    /// Least skill (see [`DEFAULT_MIN_SKILL`]) of the balanced train accuracy and of the
    /// balanced train loss for the model to count as trained.
    pub min_skill: f64,
    /// A balanced train loss above this multiple of ln C counts as diverged
    /// ([`DEFAULT_DIVERGED_LOSS_RATIO`]).
    pub diverged_loss_ratio: f64,
}

impl Default for VerdictRule {
    fn default() -> Self {
        Self {
            max_gradient_ratio: DEFAULT_MAX_GRADIENT_RATIO,
            min_skill: DEFAULT_MIN_SKILL,
            diverged_loss_ratio: DEFAULT_DIVERGED_LOSS_RATIO,
        }
    }
}

/// An f64 that JSON stores as `null` when it is not finite (serde_json writes NaN and ±∞
/// so): read back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// [`nan_if_null`] for every element.
fn nan_if_null_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(deserializer)?
        .into_iter()
        .map(|x| x.unwrap_or(f64::NAN))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_serialize_in_snake_case_and_read_back() {
        for kind in VerdictKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<VerdictKind>(&json).unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(VerdictKind::MinimumLike.label(), "minimum-like");
        assert_eq!(VerdictKind::default(), VerdictKind::Undetermined);
    }

    #[test]
    fn non_finite_numbers_are_stored_as_null_and_read_back_as_nan() {
        let first = FirstOrder {
            loss: f64::INFINITY,
            accuracy: 0.5,
            grad_norm: f64::NAN,
            grad_curvature: 1.0,
            slope_min: 1.0,
            radius: 0.5,
            gradient_decrease: 1.5,
            slope_term: 0.5,
            curvature_term: 0.25,
        };
        let json = serde_json::to_string(&first).unwrap();
        assert!(json.starts_with(r#"{"loss":null,"accuracy":0.5,"grad_norm":null,"#));
        let back: FirstOrder = serde_json::from_str(&json).unwrap();
        assert!(back.loss.is_nan() && back.grad_norm.is_nan() && !back.is_finite());
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        // The gradient's decrease is 6 times the curvature term, the slope along u_min twice.
        assert_eq!(first.gradient_ratio(), 6.0);
        let gentle = FirstOrder {
            gradient_decrease: 0.1,
            ..first
        };
        assert_eq!(gentle.gradient_ratio(), 2.0);
    }
}
