//! The first-order context of a class-wise Hessian: the class loss, its gradient g with the
//! curvature along it, the slope g·u_min along the eigenvector of λ_min, and what the
//! gradient and the negative curvature each lower the quadratic model by at the radius the
//! landscape draws. What
//! [`crate::verdict::judge`] weighs.

use saddlescope_results::FirstOrder;
use saddlescope_spectral::{OperatorError, SpectrumEstimate};

use crate::landscape::{default_range, LossSurface};
use crate::Error;

/// The [`FirstOrder`] numbers of `surface` at its weights, given its spectrum `estimate`
/// (which must carry the Ritz vector of λ_min: [`saddlescope_spectral::SpectrumParams`]'s
/// `ritz_vectors`) and the accuracy on its samples. One gradient evaluation and one
/// application (the curvature along the gradient).
///
/// # Errors
/// [`Error::Spectral`] (class `class`) when the estimate has no Ritz vector of λ_min, one
/// of another length, or the application fails; the surface's errors.
pub(crate) fn first_order<S: LossSurface + ?Sized>(
    surface: &S,
    estimate: &SpectrumEstimate,
    accuracy: f64,
    class: &str,
) -> Result<FirstOrder, Error> {
    let spectral = |source| Error::Spectral {
        class: class.to_string(),
        source,
    };
    let bug = |message| spectral(saddlescope_spectral::Error::PotentialBug { message });
    let u_min = estimate
        .lambda_min_vector
        .as_deref()
        .ok_or_else(|| bug("the estimate carries no Ritz vector of λ_min"))?;
    let (loss, g) = surface.loss_and_grad()?;
    if g.len() != u_min.len() {
        return Err(bug(
            "the Ritz vector of λ_min and the gradient differ in length",
        ));
    }
    let grad_norm = norm(&g);
    let grad_curvature = if grad_norm > 0.0 {
        let unit: Vec<f64> = g.iter().map(|x| x / grad_norm).collect();
        let mut h_unit = vec![0.0; unit.len()];
        surface
            .apply(&unit, &mut h_unit)
            .map_err(|source: OperatorError| {
                spectral(saddlescope_spectral::Error::Operator {
                    application: 1,
                    source,
                })
            })?;
        dot(&unit, &h_unit)
    } else {
        0.0
    };
    let slope_min = dot(&g, u_min).abs();
    let radius = default_range(estimate.lambda_min, loss);
    Ok(FirstOrder {
        loss,
        accuracy,
        grad_norm,
        grad_curvature,
        slope_min,
        radius,
        gradient_decrease: cauchy_decrease(grad_norm, grad_curvature, radius),
        slope_term: slope_min * radius,
        curvature_term: 0.5 * estimate.lambda_min.abs() * radius * radius,
    })
}

/// The decrease of the model `t ↦ −‖g‖t + ½κ⁺t²` along −g, κ⁺ = max(κ, 0), from t = 0 to
/// its minimum on [0, r]: the Cauchy step of trust-region methods (Nocedal & Wright 2006,
/// eq. 4.12), with negative curvature left to the eigen step. ‖g‖²/(2κ) when the minimum
/// ‖g‖/κ lies inside (κ > 0), else the value at r.
fn cauchy_decrease(grad_norm: f64, curvature: f64, radius: f64) -> f64 {
    let curvature = curvature.max(0.0);
    if grad_norm < curvature * radius {
        grad_norm * grad_norm / (2.0 * curvature)
    } else {
        grad_norm * radius - 0.5 * curvature * radius * radius
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::cauchy_decrease;

    #[test]
    fn the_cauchy_step_stops_at_the_minimum_or_the_radius() {
        // Minimum inside: ‖g‖/κ = 0.5 < 1, decrease ‖g‖²/(2κ) = 1/4.
        assert_eq!(cauchy_decrease(1.0, 2.0, 1.0), 0.25);
        // Minimum at the radius exactly: both formulas give ‖g‖r − ½κr² = ½.
        assert_eq!(cauchy_decrease(1.0, 1.0, 1.0), 0.5);
        // Minimum outside: 2·1 − ½·1·1.
        assert_eq!(cauchy_decrease(2.0, 1.0, 1.0), 1.5);
        // Flat or negative curvature along −g: the whole radius, first order only.
        assert_eq!(cauchy_decrease(1.0, 0.0, 2.0), 2.0);
        assert_eq!(cauchy_decrease(1.0, -1.0, 2.0), 2.0);
        assert_eq!(cauchy_decrease(0.0, 3.0, 2.0), 0.0);
    }
}
