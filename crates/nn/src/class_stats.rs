//! Per-class constants of the long-tail losses, from the training-set class counts `n_c`.
//!
//! Formulas follow the reference implementations (LDAM-DRW, Cao et al. 2019; VS loss,
//! Kini et al. 2021), which the paper's code reuses.

use crate::error::{Error, Result};

/// The DRW/`--reweight` default of the reference code, `β = 0.9999`.
pub const DRW_BETA: f64 = 0.9999;

fn check_counts(counts: &[usize]) -> Result<()> {
    if counts.is_empty() {
        return Err(Error::ClassStats {
            reason: "no class counts given".to_string(),
        });
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(Error::ClassStats {
            reason: format!("class {c} has count 0 (every class needs a training sample)"),
        });
    }
    Ok(())
}

/// Class-balanced ("effective number") weights of DRW (Cui et al. 2019):
/// `w_c = (1 − β)/(1 − β^{n_c})`, normalized so that `Σ_c w_c = C`.
///
/// ```
/// let w = saddlescope_nn::drw_weights(&[100, 10], 0.9999)?;
/// assert!((w[0] + w[1] - 2.0).abs() < 1e-12 && w[1] > 9.0 * w[0]);
/// # Ok::<(), saddlescope_nn::Error>(())
/// ```
///
/// Errors: no counts, a zero count, or `β` outside `[0, 1)`.
pub fn drw_weights(counts: &[usize], beta: f64) -> Result<Vec<f64>> {
    check_counts(counts)?;
    if !(0.0..1.0).contains(&beta) {
        return Err(Error::ClassStats {
            reason: format!("drw beta {beta} is outside [0, 1)"),
        });
    }
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| (1.0 - beta) / (1.0 - beta.powf(n as f64)))
        .collect();
    let total: f64 = raw.iter().sum();
    Ok(raw
        .iter()
        .map(|w| w / total * counts.len() as f64)
        .collect())
}

/// LDAM margins `m_c ∝ n_c^(−1/4)`, rescaled so that `max_c m_c = max_m` (reference
/// default `max_m = 0.5`).
///
/// Errors: no counts or a zero count.
pub fn ldam_margins(counts: &[usize], max_m: f64) -> Result<Vec<f64>> {
    check_counts(counts)?;
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| 1.0 / (n as f64).sqrt().sqrt())
        .collect();
    let largest = raw.iter().cloned().fold(f64::MIN, f64::max);
    Ok(raw.iter().map(|m| m * max_m / largest).collect())
}

/// VS-loss logit adjustments `(Δ, ι)`: multiplicative `Δ_c = (n_max/n_c)^γ` and additive
/// `ι_c = τ·log(n_c/N)`, `N = Σ n_c`; the loss uses `z_c/Δ_c + ι_c`. `γ = 0` gives logit
/// adjustment (Menon et al. 2021).
///
/// Errors: no counts or a zero count.
pub fn vs_adjustments(counts: &[usize], gamma: f64, tau: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    check_counts(counts)?;
    let n_max = *counts.iter().max().unwrap_or(&1) as f64;
    let total: f64 = counts.iter().map(|&n| n as f64).sum();
    let delta = counts
        .iter()
        .map(|&n| (n_max / n as f64).powf(gamma))
        .collect();
    let iota = counts
        .iter()
        .map(|&n| tau * (n as f64 / total).ln())
        .collect();
    Ok((delta, iota))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CIFAR-10-LT, exponential imbalance ratio 100, n_max 5000 (the reference code's
    /// `img_max * (1/100)^(i/9)` truncated).
    const CIFAR10_LT: [usize; 10] = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50];

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "[{i}] {g} vs {w}");
        }
    }

    // Reference values computed by hand with Python's `math` (no numpy), e.g.
    //   n = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    //   raw = [(1-0.9999)/(1-0.9999**c) for c in n]; [w/sum(raw)*10 for w in raw]
    //   m = [c**-0.25 for c in n]; [x*0.5/max(m) for x in m]
    //   [(5000/c)**0.3 for c in n]; [math.log(c/sum(n)) for c in n]
    #[test]
    fn drw_weights_of_cifar10_lt() {
        let w = drw_weights(&CIFAR10_LT, DRW_BETA).unwrap();
        let want = [
            0.050611361216392606,
            0.07689979460472873,
            0.12113387289908852,
            0.19503666572291045,
            0.31880537306900303,
            0.5245898532697837,
            0.8683489410056613,
            1.442627270007183,
            2.4092230511593415,
            3.9927238170459063,
        ];
        assert_close(&w, &want, 1e-12);
        assert!((w.iter().sum::<f64>() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn ldam_margins_of_cifar10_lt() {
        let m = ldam_margins(&CIFAR10_LT, 0.5).unwrap();
        let want = [
            0.15811388300841894,
            0.17969699708724132,
            0.20423770530101681,
            0.2320911495481279,
            0.26382902758929516,
            0.29976765058324534,
            0.3406751918773326,
            0.3872209136604282,
            0.44049702771594634,
            0.5,
        ];
        assert_close(&m, &want, 1e-12);
    }

    #[test]
    fn vs_adjustments_of_cifar10_lt() {
        let (delta, iota) = vs_adjustments(&CIFAR10_LT, 0.3, 1.0).unwrap();
        let want_delta = [
            1.0,
            1.165963562254988,
            1.3595622633660516,
            1.5849891379509256,
            1.8485154590545958,
            2.1546548525868516,
            2.5121444374177355,
            2.9294531795904786,
            3.4195390971789275,
            3.9810717055349722,
        ];
        let want_iota = [
            -0.9087423141168254,
            -1.4205684382163997,
            -1.9326182566709178,
            -2.4440008283766743,
            -2.9566851887372905,
            -3.467510812503281,
            -3.979198133866753,
            -4.491461572402371,
            -5.007094897736465,
            -5.513912500104917,
        ];
        assert_close(&delta, &want_delta, 1e-12);
        assert_close(&iota, &want_iota, 1e-12);
        let (la_delta, _) = vs_adjustments(&CIFAR10_LT, 0.0, 1.0).unwrap();
        assert!(la_delta.iter().all(|&d| d == 1.0));
    }

    #[test]
    fn bad_counts_are_named() {
        let err = drw_weights(&[3, 0, 2], DRW_BETA).unwrap_err().to_string();
        assert!(err.contains("class 1 has count 0"), "{err}");
        let err = drw_weights(&[3], 1.0).unwrap_err().to_string();
        assert!(err.contains("beta 1"), "{err}");
        assert!(ldam_margins(&[], 0.5).is_err());
    }
}
