//! The verdict on a class's loss at the weights: saddle, minimum-like, not stationary or
//! undetermined, each with its reason in words.
//!
//! The paper this tool follows (Rangwani et al. 2022) calls a tail class a saddle from its
//! Hessian's λ_min/λ_max and eigen-density alone. A negative eigenvalue makes a saddle only
//! near a stationary point (Dauphin et al. 2014), and a class's loss at weights trained on
//! every class is in general not stationary: so the verdict also weighs the class gradient
//! against the negative curvature ([`judge`]), and says nothing about a model that is
//! untrained or diverged ([`crate::health`]).

use saddlescope_results::{FirstOrder, HealthStatus, ModelHealth, VerdictKind, VerdictRule};
use saddlescope_spectral::SpectrumEstimate;
use serde::{Deserialize, Serialize};

use crate::first_order::first_order;
use crate::fit::correct_predictions;
use crate::operator::ClassHessian;
use crate::{Error, Param};

/// Default of [`SaddleRule::min_ratio`].
///
/// A ReLU network's class Hessian at a well-trained point still has small negative
/// eigenvalues (the loss is not convex, and SLQ resolves them), typically a few percent of
/// λ_max or less for head classes; the tail-class saddles the SAM long-tail paper reports
/// (Rangwani et al. 2022, Fig. 1 and 3) have |λ_min| of the same order as λ_max. Flagging at
/// 10% separates the two regimes with margin on both sides; the raw λ_min/λ_max is always
/// in the output, so a stricter or looser reading needs no re-run (`--saddle-ratio`).
pub const DEFAULT_SADDLE_RATIO: f64 = 0.1;

/// When a class's negative curvature is significant: the curvature half of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaddleRule {
    /// Minimum |λ_min| / λ_max.
    pub min_ratio: f64,
}

impl Default for SaddleRule {
    fn default() -> Self {
        Self {
            min_ratio: DEFAULT_SADDLE_RATIO,
        }
    }
}

impl SaddleRule {
    /// λ_min / λ_max, or `None` when λ_max ≤ 0 (no positive curvature to compare with).
    pub fn ratio(estimate: &SpectrumEstimate) -> Option<f64> {
        (estimate.lambda_max > 0.0).then(|| estimate.lambda_min / estimate.lambda_max)
    }
}

/// Checks the thresholds of a [`VerdictRule`]: each finite and positive, the skill below 1
/// and the diverged loss ratio at least 1.
///
/// # Errors
/// [`Error::Invalid`] naming the bad threshold.
pub fn check_verdict_rule(rule: &VerdictRule) -> Result<(), Error> {
    let check = |param: Param, value: f64, ok: bool, expected: &str| {
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid {
                param,
                reason: format!("{value}: expected {expected}"),
            })
        }
    };
    let r = rule.max_gradient_ratio;
    check(
        Param::MaxGradientRatio,
        r,
        r.is_finite() && r > 0.0,
        "a finite ratio > 0",
    )?;
    let s = rule.min_skill;
    check(
        Param::MinSkill,
        s,
        s.is_finite() && (0.0..1.0).contains(&s),
        "a skill in [0, 1)",
    )?;
    let d = rule.diverged_loss_ratio;
    check(
        Param::DivergedLossRatio,
        d,
        d.is_finite() && d >= 1.0,
        "a finite ratio >= 1 (1 is the loss of a uniform predictor)",
    )
}

/// A number for prose: three significant digits, in scientific notation outside
/// [1e-3, 1e4).
pub(crate) fn num(x: f64) -> String {
    let magnitude = x.abs();
    if !x.is_finite() || x == 0.0 {
        format!("{x}")
    } else if (1e-3..1e4).contains(&magnitude) {
        let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2e}")
    }
}

/// The verdict on one class-wise (or the all-classes) Hessian, and its reason in words with
/// the numbers it used. In this order:
///
/// 1. `undetermined` when the model is not [`HealthStatus::Trained`] (its Hessians describe
///    an initialisation or a blow-up, not a trained model), when the first-order numbers are
///    missing or not finite, or when λ_max ≤ 0;
/// 2. `minimum_like` when the negative curvature is not significant: λ_min is not negative
///    beyond its residual bound, or |λ_min|/λ_max < `saddle.min_ratio`;
/// 3. `saddle` when [`FirstOrder::gradient_ratio`] is at most `rule.max_gradient_ratio`:
///    at the radius r the negative curvature lowers the class loss's quadratic model by at
///    least as much as the gradient does (the Cauchy step, stopped by positive curvature
///    along g), and more than the slope along u_min: the weights are near a stationary
///    point with a descent direction of negative curvature;
/// 4. `not_stationary` otherwise: the gradient wins (the loss falls along −g more than
///    along u_min), or the slope along u_min outweighs its curvature (the top of the
///    model's parabola along u_min lies beyond r/2); either way the negative curvature does
///    not make a saddle.
///
/// Weighing the gradient, not only the slope |g·u_min|, matters: a gradient orthogonal to
/// u_min still means the weights are on a slope of the class loss, unless positive
/// curvature along it stops the descent within a short distance (a stationary point
/// nearby). Weighing the slope too matters when a stiff component of g hides a slope along
/// u_min from the Cauchy step.
pub fn judge(
    saddle: &SaddleRule,
    rule: &VerdictRule,
    health: &ModelHealth,
    estimate: &SpectrumEstimate,
    first_order: Option<&FirstOrder>,
) -> (VerdictKind, String) {
    let undetermined = |reason: String| (VerdictKind::Undetermined, reason);
    if health.status != HealthStatus::Trained {
        return undetermined(format!(
            "the model is {}: {}",
            health.status.as_str(),
            health.reason
        ));
    }
    let Some(f) = first_order.filter(|f| f.is_finite()) else {
        return undetermined(match first_order {
            None => "no first-order numbers (class loss and gradient) to weigh".into(),
            Some(f) => format!(
                "the class loss or its gradient is not finite (loss {}, ‖g‖ {})",
                num(f.loss),
                num(f.grad_norm)
            ),
        });
    };
    let (lambda_min, bound) = (estimate.lambda_min, estimate.lambda_min_bound);
    if lambda_min + bound >= 0.0 {
        return (
            VerdictKind::MinimumLike,
            format!(
                "no negative curvature: λ_min = {} is not below 0 by more than its bound {}",
                num(lambda_min),
                num(bound)
            ),
        );
    }
    let Some(ratio) = SaddleRule::ratio(estimate) else {
        return undetermined(format!(
            "λ_max = {} ≤ 0: no positive curvature to weigh λ_min = {} against",
            num(estimate.lambda_max),
            num(lambda_min)
        ));
    };
    let curvature = format!(
        "λ_min = {} (|λ_min|/λ_max = {})",
        num(lambda_min),
        num(-ratio)
    );
    if -ratio < saddle.min_ratio {
        return (
            VerdictKind::MinimumLike,
            format!(
                "no significant negative curvature: {curvature} is below the saddle ratio {}",
                num(saddle.min_ratio)
            ),
        );
    }
    let terms = format!(
        "at r = {} the negative curvature lowers the class loss's quadratic model by ½|λ_min|·r² = {}, the gradient by {} (‖g‖ = {}, curvature along g {}), and the slope along u_min is |g·u_min|·r = {}",
        num(f.radius),
        num(f.curvature_term),
        num(f.gradient_decrease),
        num(f.grad_norm),
        num(f.grad_curvature),
        num(f.slope_term)
    );
    let ratio = format!(
        "gradient ratio {} {} {}",
        num(f.gradient_ratio()),
        if f.gradient_ratio() <= rule.max_gradient_ratio {
            "≤"
        } else {
            ">"
        },
        num(rule.max_gradient_ratio)
    );
    if f.gradient_ratio() <= rule.max_gradient_ratio {
        (
            VerdictKind::Saddle,
            format!(
                "negative curvature dominates: {curvature}; {terms}: {ratio}, so the weights are near a stationary point of this class's loss"
            ),
        )
    } else {
        let what = if f.gradient_decrease >= f.slope_term {
            "the gradient dominates"
        } else {
            "the slope along u_min dominates"
        };
        (
            VerdictKind::NotStationary,
            format!(
                "{what}: {terms}: {ratio}, so {curvature} does not make a saddle: the weights are not near a stationary point of this class's loss"
            ),
        )
    }
}

/// A class-wise Hessian's first-order numbers and verdict.
pub(crate) struct Assessment {
    /// Class loss, accuracy, gradient, slope and model terms.
    pub(crate) first_order: FirstOrder,
    /// The verdict.
    pub(crate) verdict: VerdictKind,
    /// Its reason in words.
    pub(crate) reason: String,
}

/// The [`FirstOrder`] numbers of the Hessian `op` (named `name`) whose spectrum is
/// `estimate` (with the Ritz vector of λ_min), and its verdict by [`judge`]. One gradient
/// and one forward pass over the Hessian's samples.
///
/// # Errors
/// As [`first_order`]; model errors.
pub(crate) fn assess(
    op: &ClassHessian<'_>,
    estimate: &SpectrumEstimate,
    name: &str,
    health: &ModelHealth,
    saddle: &SaddleRule,
    rule: &VerdictRule,
) -> Result<Assessment, Error> {
    let batches = op.hvp().batches();
    let correct = correct_predictions(op.hvp().model(), batches)?;
    let accuracy = correct as f64 / op.hvp().samples() as f64;
    let first_order = first_order(op, estimate, accuracy, name)?;
    let (verdict, reason) = judge(saddle, rule, health, estimate, Some(&first_order));
    Ok(Assessment {
        first_order,
        verdict,
        reason,
    })
}
