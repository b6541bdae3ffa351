//! Sharpness-Aware Minimization's ascent step (Foret et al. 2021; adaptive variant ASAM,
//! Kwon et al. 2021), as in the reference implementation the SAM long-tail paper uses:
//! `e = ρ·g/‖g‖` with one global norm over all trainable parameters, or for ASAM
//! `e = ρ·w²·g/‖|w|·g‖`. The trainer moves to `w + e`, takes the gradient there, restores
//! `w` exactly and lets SGD step with that gradient (weight decay taken at `w`).

use candle_core::{DType, Tensor};

use crate::Error;

/// Global norm ‖g‖ over all gradients (ASAM: ‖|w|·g‖), skipping parameters without one.
pub fn global_norm(
    weights: &[Tensor],
    grads: &[Option<Tensor>],
    adaptive: bool,
) -> Result<f64, Error> {
    let mut sum = 0.0;
    for (grad, w) in grads.iter().zip(weights) {
        let Some(grad) = grad else { continue };
        let scaled = if adaptive {
            (grad * w.abs()?)?
        } else {
            grad.clone()
        };
        sum += scaled
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// The SAM perturbation `e` of each parameter for radius `rho` (`None` where there is no
/// gradient), given the gradient norm from [`global_norm`].
pub fn perturbation(
    weights: &[Tensor],
    grads: &[Option<Tensor>],
    grad_norm: f64,
    rho: f64,
    adaptive: bool,
) -> Result<Vec<Option<Tensor>>, Error> {
    // The 1e-12 guard of the reference implementation: a zero gradient gives e = 0.
    let scale = rho / (grad_norm + 1e-12);
    grads
        .iter()
        .zip(weights)
        .map(|(grad, w)| {
            grad.as_ref()
                .map(|g| {
                    let e = if adaptive { (g * w.sqr()?)? } else { g.clone() };
                    Ok((e * scale)?)
                })
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::sgd::{Sgd, SgdParams};

    fn t(values: &[f64]) -> Tensor {
        Tensor::new(values, &Device::Cpu).unwrap()
    }

    fn v(t: &Tensor) -> Vec<f64> {
        t.to_vec1().unwrap()
    }

    /// f(w) = ½ wᵀ diag(1, 3) w at w = (1, 2): g = (1, 6), ‖g‖ = √37.
    /// SAM, ρ = 0.5: e = 0.5·(1, 6)/√37; g(w+e) = diag(1, 3)(w + e);
    /// SGD lr 0.1, no momentum, no decay: w' = w − 0.1·g(w+e).
    #[test]
    fn sam_step_on_a_quadratic_matches_hand_computation() {
        let w = t(&[1.0, 2.0]);
        let g = vec![Some(t(&[1.0, 6.0]))];
        let norm = global_norm(std::slice::from_ref(&w), &g, false).unwrap();
        assert!((norm - 37f64.sqrt()).abs() < 1e-15);
        let e = perturbation(std::slice::from_ref(&w), &g, norm, 0.5, false).unwrap();
        let e = v(e[0].as_ref().unwrap());
        let s = 37f64.sqrt();
        assert!((e[0] - 0.5 / s).abs() < 1e-12 && (e[1] - 3.0 / s).abs() < 1e-12);
        let grad_at_perturbed = t(&[1.0 + 0.5 / s, 3.0 * (2.0 + 3.0 / s)]);
        let var = Var::from_tensor(&w).unwrap();
        let mut sgd = Sgd::new(
            SgdParams {
                momentum: 0.0,
                weight_decay: 0.0,
            },
            1,
        );
        sgd.step(&[&var], &[Some(grad_at_perturbed)], 0.1).unwrap();
        let updated = v(var.as_tensor());
        // By hand: 1 − 0.1·(1 + 0.0821995) = 0.8917800506, 2 − 0.3·(2 + 0.4931970) = 1.2520409114
        let expected = [1.0 - 0.1 * (1.0 + 0.5 / s), 2.0 - 0.3 * (2.0 + 3.0 / s)];
        assert!((updated[0] - 0.891_780_050_6).abs() < 1e-9, "{updated:?}");
        assert!((updated[1] - 1.252_040_911_4).abs() < 1e-9, "{updated:?}");
        assert!(
            (updated[0] - expected[0]).abs() < 1e-12 && (updated[1] - expected[1]).abs() < 1e-12
        );
    }

    /// ASAM at w = (1, 2), g = (1, 6): |w|g = (1, 12), norm √145; e = ρ w² g / √145.
    #[test]
    fn adaptive_perturbation_scales_by_squared_weights() {
        let w = t(&[1.0, -2.0]);
        let g = vec![Some(t(&[1.0, 6.0]))];
        let norm = global_norm(std::slice::from_ref(&w), &g, true).unwrap();
        assert!((norm - 145f64.sqrt()).abs() < 1e-13);
        let e = perturbation(std::slice::from_ref(&w), &g, norm, 1.0, true).unwrap();
        let e = v(e[0].as_ref().unwrap());
        assert!((e[0] - 1.0 / 145f64.sqrt()).abs() < 1e-12);
        assert!((e[1] - 24.0 / 145f64.sqrt()).abs() < 1e-12);
    }

    /// Two steps of PyTorch SGD (μ 0.9, wd 0.01, lr 0.1) by hand:
    /// d1 = g1 + 0.01 w0 = (0.51, −0.98), w1 = w0 − 0.1 d1 = (0.949, 2.098);
    /// d2 = g2 + 0.01 w1 = (0.20949, 0.32098), buf = 0.9 d1 + d2 = (0.66849, −0.56102),
    /// w2 = w1 − 0.1 buf = (0.882151, 2.154102).
    #[test]
    fn sgd_momentum_weight_decay_matches_pytorch_by_hand() {
        let var = Var::from_tensor(&t(&[1.0, 2.0])).unwrap();
        let mut sgd = Sgd::new(
            SgdParams {
                momentum: 0.9,
                weight_decay: 0.01,
            },
            1,
        );
        sgd.step(&[&var], &[Some(t(&[0.5, -1.0]))], 0.1).unwrap();
        let w1 = v(var.as_tensor());
        assert!(
            (w1[0] - 0.949).abs() < 1e-14 && (w1[1] - 2.098).abs() < 1e-14,
            "{w1:?}"
        );
        sgd.step(&[&var], &[Some(t(&[0.2, 0.3]))], 0.1).unwrap();
        let w2 = v(var.as_tensor());
        assert!(
            (w2[0] - 0.882151).abs() < 1e-14 && (w2[1] - 2.154102).abs() < 1e-14,
            "{w2:?}"
        );
        // A parameter without a gradient is left alone, as in PyTorch.
        sgd.step(&[&var], &[None], 0.1).unwrap();
        assert_eq!(v(var.as_tensor()), w2);
    }
}
