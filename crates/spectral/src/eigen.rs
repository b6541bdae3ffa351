//! Dense symmetric eigensolves of the small projected matrices (tridiagonal after plain
//! Lanczos, arrowhead-plus-tridiagonal after a thick restart).

use nalgebra::{DMatrix, SymmetricEigen};

use crate::error::Error;

/// Eigenvalues in ascending order and the matching unit eigenvectors as columns.
pub(crate) struct Eigen {
    pub(crate) values: Vec<f64>,
    pub(crate) vectors: DMatrix<f64>,
}

/// Eigendecomposition of a small symmetric matrix by nalgebra's implicit QR (accurate to
/// about machine epsilon times its norm), sorted ascending.
///
/// # Errors
/// [`Error::EigenSolver`] if the QR iteration does not converge within 100 sweeps per
/// eigenvalue (only seen with non-finite entries).
pub(crate) fn symmetric_eigen(h: DMatrix<f64>) -> Result<Eigen, Error> {
    let size = h.nrows();
    let eig = SymmetricEigen::try_new(h, f64::EPSILON, 100 * size.max(1))
        .ok_or(Error::EigenSolver { size })?;
    if eig.eigenvalues.iter().any(|v| !v.is_finite()) {
        return Err(Error::EigenSolver { size });
    }
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let values = order.iter().map(|&k| eig.eigenvalues[k]).collect();
    let vectors = DMatrix::from_fn(size, size, |i, j| eig.eigenvectors[(i, order[j])]);
    Ok(Eigen { values, vectors })
}

/// The symmetric tridiagonal matrix with diagonal `alphas` and off-diagonal
/// `betas[..alphas.len() - 1]` (extra betas are ignored).
pub(crate) fn tridiagonal(alphas: &[f64], betas: &[f64]) -> DMatrix<f64> {
    let j = alphas.len();
    let mut t = DMatrix::zeros(j, j);
    for (i, &a) in alphas.iter().enumerate() {
        t[(i, i)] = a;
    }
    for (i, &b) in betas.iter().take(j.saturating_sub(1)).enumerate() {
        t[(i, i + 1)] = b;
        t[(i + 1, i)] = b;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tridiagonal_eigenvalues_match_closed_form() {
        // tridiag(-1, 2, -1) of size j has eigenvalues 2 - 2 cos(kπ/(j+1)), k = 1..j.
        let j = 50;
        let eig = symmetric_eigen(tridiagonal(&vec![2.0; j], &vec![-1.0; j])).unwrap();
        for (k, v) in eig.values.iter().enumerate() {
            let exact = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (j + 1) as f64).cos();
            // 1e-13 absolute: QR accuracy is ~ε‖T‖ with ‖T‖ ≤ 4.
            assert!((v - exact).abs() < 1e-13, "{k}: {v} vs {exact}");
        }
        let v = &eig.vectors;
        assert!((v.transpose() * v - DMatrix::identity(j, j)).amax() < 1e-13);
    }
}
