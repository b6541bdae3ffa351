//! Model health: whether the analysed weights are a trained model at all. The Hessian of an
//! untrained network describes its initialisation, and that of a diverged one a blow-up:
//! neither says anything about the saddles of training (a 1-epoch run at lr 1e-12 is
//! "saddle" in every class by curvature alone), so their verdicts are `undetermined`.
//!
//! Measured once per analysis on the training split, class by class ([`model_health`]),
//! and judged by [`judge_health`] against the two reference predictors that learnt nothing:
//! a constant one (balanced accuracy 1/C) and the uniform one (loss ln C).

use saddlescope_data::Split;
use saddlescope_results::{HealthStatus, ModelHealth, VerdictRule};

use crate::fit::correct_predictions;
use crate::setup::HessianSetup;
use crate::verdict::num;
use crate::{Error, Param};

/// The training split's loss (the analysed one), accuracy and full gradient norm at the
/// weights, overall and per class, and their judgement under `rule`.
///
/// Each class's samples are one sample set, as the class-wise Hessians take them (the
/// analysis's dtype, batch size, eval-mode BN and parameter block); the loss over the whole
/// split and its gradient are the sample-weighted means of the classes' (the
/// [`saddlescope_nn::Loss::batch_weight`] weights, so they equal those of the union). Cost:
/// one gradient and one forward pass over the split.
///
/// # Errors
/// [`Error::Invalid`] naming the data set when the training split is empty; model errors.
pub(crate) fn model_health(
    setup: &HessianSetup<'_>,
    train: &Split,
    rule: &VerdictRule,
) -> Result<ModelHealth, Error> {
    let classes = setup.model().classes();
    let mut class_loss = vec![f64::NAN; classes];
    let mut class_accuracy = vec![f64::NAN; classes];
    let (mut samples, mut correct, mut weight) = (0usize, 0usize, 0.0f64);
    let (mut loss, mut grad) = (0.0f64, Vec::new());
    for c in 0..classes {
        let batches = setup.batches_of(train, c, None)?;
        if batches.is_empty() {
            continue;
        }
        let n: usize = batches.iter().map(|b| b.len()).sum();
        let w: f64 = batches
            .iter()
            .map(|b| setup.loss().batch_weight(b.labels()))
            .sum::<Result<f64, _>>()?;
        let right = correct_predictions(setup.model(), &batches)?;
        let (l, g) = setup.operator(batches)?.hvp().loss_and_grad_flat()?;
        if grad.is_empty() {
            grad = vec![0.0; g.len()];
        }
        grad.iter_mut().zip(&g).for_each(|(s, x)| *s += w * x);
        loss += w * l;
        weight += w;
        samples += n;
        correct += right;
        class_loss[c] = l;
        class_accuracy[c] = right as f64 / n as f64;
    }
    if samples == 0 {
        return Err(Error::Invalid {
            param: Param::Dataset,
            reason: "the training split has no samples to judge the model's fit by".into(),
        });
    }
    let grad_norm = grad.iter().map(|x| x * x).sum::<f64>().sqrt() / weight;
    // Over the classes with training samples (their accuracy is a number; a loss may not be).
    let present: Vec<usize> = (0..classes)
        .filter(|&c| !class_accuracy[c].is_nan())
        .collect();
    let balanced =
        |values: &[f64]| present.iter().map(|&c| values[c]).sum::<f64>() / present.len() as f64;
    let mut health = ModelHealth {
        classes,
        samples,
        loss: loss / weight,
        accuracy: correct as f64 / samples as f64,
        balanced_loss: balanced(&class_loss),
        balanced_accuracy: balanced(&class_accuracy),
        grad_norm,
        class_loss,
        class_accuracy,
        status: HealthStatus::Trained,
        reason: String::new(),
    };
    (health.status, health.reason) = judge_health(rule, &health);
    Ok(health)
}

/// Whether `health`'s numbers show a trained model, and why, in words. In this order:
///
/// - [`HealthStatus::Diverged`] when the loss or the gradient norm is not finite, or the
///   balanced loss exceeds `rule.diverged_loss_ratio · ln C`;
/// - [`HealthStatus::Untrained`] when the skill of the balanced accuracy,
///   `(a − 1/C)/(1 − 1/C)`, or of the balanced loss, `1 − L/ln C`, is at most
///   `rule.min_skill` (both reasons are given when both fail);
/// - [`HealthStatus::Trained`] otherwise.
///
/// The status and reason fields of `health` are not read.
pub(crate) fn judge_health(rule: &VerdictRule, health: &ModelHealth) -> (HealthStatus, String) {
    let c = health.classes as f64;
    let (chance, uniform) = (1.0 / c, c.ln());
    let (loss, accuracy) = (health.balanced_loss, health.balanced_accuracy);
    if !(loss.is_finite() && health.loss.is_finite() && health.grad_norm.is_finite()) {
        return (
            HealthStatus::Diverged,
            format!(
                "the train loss or its gradient is not finite (balanced loss {}, ‖∇L‖ {})",
                num(loss),
                num(health.grad_norm)
            ),
        );
    }
    let ln_c = format!("ln {} = {}", health.classes, num(uniform));
    if loss > rule.diverged_loss_ratio * uniform {
        return (
            HealthStatus::Diverged,
            format!(
                "balanced train loss {} is {}× {ln_c}, the loss of a uniform predictor (above {}×): the weights have blown up",
                num(loss),
                num(loss / uniform),
                num(rule.diverged_loss_ratio)
            ),
        );
    }
    let accuracy_skill = (accuracy - chance) / (1.0 - chance);
    let loss_skill = 1.0 - loss / uniform;
    let accuracy_words = format!(
        "balanced train accuracy {}% (skill {} over chance {}%)",
        num(100.0 * accuracy),
        num(accuracy_skill),
        num(100.0 * chance)
    );
    let loss_words = format!(
        "balanced train loss {} (skill {} below {ln_c})",
        num(loss),
        num(loss_skill)
    );
    let failing: Vec<&str> = [
        (accuracy_skill, accuracy_words.as_str()),
        (loss_skill, loss_words.as_str()),
    ]
    .iter()
    .filter(|(skill, _)| *skill <= rule.min_skill)
    .map(|&(_, words)| words)
    .collect();
    if failing.is_empty() {
        (
            HealthStatus::Trained,
            format!("{accuracy_words}, {loss_words}"),
        )
    } else {
        (
            HealthStatus::Untrained,
            format!(
                "{}: at most {} of the way from a predictor that learnt nothing",
                failing.join(" and "),
                num(rule.min_skill)
            ),
        )
    }
}
