//! Which term sets a residual bound. Every bound of λ_min, λ_max and the top k is the
//! Lanczos residual plus one rounding allowance `j · u · ‖T‖` (j basis vectors, u the unit
//! roundoff of the HVPs' dtype or of the basis storage). When the allowance makes most of a
//! bound, every converged value carries about the same bound, which reads like a bug unless
//! the output says so: such bounds are marked `r`, with one line explaining the mark.

use saddlescope_spectral::SpectrumEstimate;

/// Whether `bound` (one of `e`'s) is mostly its rounding allowance: the residual part is
/// no larger than the allowance.
pub fn set_by_rounding(e: &SpectrumEstimate, bound: f64) -> bool {
    e.rounding_allowance
        .is_some_and(|r| r > 0.0 && bound <= 2.0 * r)
}

/// `bound` with one decimal in scientific notation, `r` appended when the rounding allowance
/// sets it.
pub fn marked(e: &SpectrumEstimate, bound: f64) -> String {
    let mark = if set_by_rounding(e, bound) { " r" } else { "" };
    format!("{bound:.1e}{mark}")
}

/// The line that explains the `r` mark, when any bound of `estimates` carries it.
pub fn note<'a>(estimates: impl IntoIterator<Item = &'a SpectrumEstimate>) -> Option<String> {
    let largest = estimates
        .into_iter()
        .filter(|e| {
            let mut bounds = [e.lambda_min_bound, e.lambda_max_bound]
                .into_iter()
                .chain(e.top_k.iter().map(|r| r.bound));
            bounds.any(|b| set_by_rounding(e, b))
        })
        .filter_map(|e| e.rounding_allowance)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))?;
    Some(format!(
        "r: the bound is the rounding allowance of the arithmetic (j·u·‖T‖, up to {largest:.1e} here), not the Lanczos residual: more steps cannot tighten it; f64 HVPs and basis give the smallest"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use saddlescope_spectral::{estimate_spectrum, DenseSymmetric, SpectrumParams};

    #[test]
    fn bounds_set_by_rounding_are_marked_and_explained() {
        let n = 120;
        let mut diagonal = vec![0.0; n * n];
        for i in 0..n {
            diagonal[i * n + i] = i as f64 / 10.0 - 2.0;
        }
        let a = DenseSymmetric::from_row_major(n, n, &diagonal).unwrap();
        let mut e = estimate_spectrum(&a, &SpectrumParams::default()).unwrap();
        let r = e.rounding_allowance.unwrap();
        assert!(r > 0.0);
        e.lambda_min_bound = 1.5 * r;
        e.lambda_max_bound = 3.0 * r;
        assert_eq!(marked(&e, e.lambda_min_bound), format!("{:.1e} r", 1.5 * r));
        assert_eq!(marked(&e, e.lambda_max_bound), format!("{:.1e}", 3.0 * r));
        let line = note([&e]).unwrap();
        assert!(
            line.starts_with("r: the bound is the rounding allowance"),
            "{line}"
        );
        e.rounding_allowance = None;
        assert!(
            note([&e]).is_none(),
            "files from before the allowance was recorded"
        );
    }
}
