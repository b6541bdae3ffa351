//! Learning-rate schedules.
//!
//! The step recipe is the one of the long-tail reference code (LDAM-DRW, and the SAM paper's
//! code built on it), defined for 200 epochs: a linear warm-up `lr·e/5` for epochs `e ≤ 5`,
//! then `lr`, `lr·0.01` after epoch 160 and `lr·1e-4` after epoch 180. For other epoch counts
//! the three boundaries are scaled by `epochs / 200` and rounded (the warm-up keeps at least one
//! epoch), so a 20-epoch MNIST run warms up for 1 epoch and decays after epochs 16 and 18.

use serde::{Deserialize, Serialize};

/// How the learning rate evolves over the epochs of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Warm-up then two ×0.01 steps (the reference CIFAR recipe), scaled to the epoch count.
    #[default]
    Step,
    /// Warm-up then cosine annealing from `lr` to 0 at the last epoch.
    Cosine,
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "step" => Ok(Self::Step),
            "cosine" => Ok(Self::Cosine),
            other => Err(format!(
                "unknown schedule {other:?}, expected step or cosine"
            )),
        }
    }
}

impl std::fmt::Display for LrSchedule {
    /// `step` or `cosine`, as the flag spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Step => "step",
            Self::Cosine => "cosine",
        })
    }
}

/// Epoch `boundary` of the 200-epoch recipe mapped onto a run of `epochs` epochs.
pub fn scaled_epoch(boundary: usize, epochs: usize) -> usize {
    ((boundary * epochs) as f64 / 200.0).round() as usize
}

impl LrSchedule {
    /// Learning rate for 1-based `epoch` of a run of `epochs` epochs with base rate `lr`.
    pub fn lr_at(self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        let warmup = scaled_epoch(5, epochs).max(1);
        if epoch <= warmup {
            return lr * epoch as f64 / warmup as f64;
        }
        match self {
            Self::Step => {
                if epoch > scaled_epoch(180, epochs) {
                    lr * 1e-4
                } else if epoch > scaled_epoch(160, epochs) {
                    lr * 0.01
                } else {
                    lr
                }
            }
            Self::Cosine => {
                let span = (epochs.saturating_sub(warmup)).max(1) as f64;
                // Past the last epoch the rate stays at its end value, 0.
                let progress = ((epoch - warmup) as f64 / span).min(1.0);
                0.5 * lr * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_recipe_matches_reference_values_at_200_epochs() {
        let s = LrSchedule::Step;
        let at = |e| s.lr_at(0.1, e, 200);
        // Reference: lr*epoch/5 for epoch<=5, lr, lr*0.01 after 160, lr*1e-4 after 180.
        assert!((at(1) - 0.02).abs() < 1e-15);
        assert!((at(5) - 0.1).abs() < 1e-15);
        assert_eq!(at(6), 0.1);
        assert_eq!(at(160), 0.1);
        assert!((at(161) - 1e-3).abs() < 1e-15);
        assert!((at(180) - 1e-3).abs() < 1e-15);
        assert!((at(181) - 1e-5).abs() < 1e-18);
        assert!((at(200) - 1e-5).abs() < 1e-18);
    }

    #[test]
    fn step_recipe_scales_to_short_runs() {
        let s = LrSchedule::Step;
        // 20 epochs: warm-up 1 epoch (0.5 rounds to 1), decays after 16 and 18.
        assert_eq!(s.lr_at(0.1, 1, 20), 0.1);
        assert_eq!(s.lr_at(0.1, 16, 20), 0.1);
        assert!((s.lr_at(0.1, 17, 20) - 1e-3).abs() < 1e-15);
        assert!((s.lr_at(0.1, 19, 20) - 1e-5).abs() < 1e-18);
    }

    #[test]
    fn cosine_warms_up_then_anneals_to_zero() {
        let s = LrSchedule::Cosine;
        assert!((s.lr_at(0.1, 5, 200) - 0.1).abs() < 1e-15);
        assert!(s.lr_at(0.1, 100, 200) < 0.1 && s.lr_at(0.1, 100, 200) > 0.0);
        assert!(s.lr_at(0.1, 200, 200).abs() < 1e-15);
    }
}
