//! The saddle verdict: when a class-wise Hessian's negative curvature is real and large.

use saddlescope_spectral::SpectrumEstimate;
use serde::{Deserialize, Serialize};

/// Default of [`SaddleRule::min_ratio`].
///
/// A ReLU network's class Hessian at a well-trained point still has small negative
/// eigenvalues (the loss is not convex, and SLQ resolves them), typically a few percent of
/// λ_max or less for head classes; the tail-class saddles the SAM long-tail paper reports
/// (Rangwani et al. 2022, Fig. 1 and 3) have |λ_min| of the same order as λ_max. Flagging at
/// 10% separates the two regimes with margin on both sides; the raw λ_min/λ_max is always
/// in the output, so a stricter or looser reading needs no re-run (`--saddle-ratio`).
pub const DEFAULT_SADDLE_RATIO: f64 = 0.1;

/// When a class counts as sitting at a saddle point of its loss.
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

    /// A saddle: λ_min is negative by more than its residual bound (certainly negative),
    /// λ_max is positive, and |λ_min| / λ_max ≥ `min_ratio`.
    pub fn is_saddle(&self, estimate: &SpectrumEstimate) -> bool {
        let certainly_negative = estimate.lambda_min + estimate.lambda_min_bound < 0.0;
        certainly_negative && Self::ratio(estimate).is_some_and(|r| -r >= self.min_ratio)
    }
}
