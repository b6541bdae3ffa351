//! Test fixtures: operators with prescribed spectra, and the Wasserstein-1 distance.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::operator::DenseSymmetric;

/// A Haar-random orthogonal n × n matrix: Q of the QR factorization of a seeded Gaussian
/// matrix, with columns signed so that R has a positive diagonal (Mezzadri 2007).
pub(crate) fn orthogonal(n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = DMatrix::from_fn(n, n, |_, _| StandardNormal.sample(&mut rng));
    let qr = g.qr();
    let r = qr.r();
    let mut q = qr.q();
    for j in 0..n {
        if r[(j, j)] < 0.0 {
            q.column_mut(j).neg_mut();
        }
    }
    q
}

/// The operator `Q diag(λ) Qᵀ` and its exact eigenvalues, ascending.
pub(crate) fn dense(q: &DMatrix<f64>, lambdas: &[f64]) -> (DenseSymmetric, Vec<f64>) {
    let mut scaled = q.clone();
    for (j, &l) in lambdas.iter().enumerate() {
        scaled.column_mut(j).scale_mut(l);
    }
    let a = &scaled * q.transpose();
    let mut sorted = lambdas.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        DenseSymmetric::new(a).expect("Q diag Qᵀ is symmetric to rounding"),
        sorted,
    )
}

/// Wasserstein-1 distance `∫ |F_a − F_b| dx` between two discrete probability measures
/// given as (point, weight) atoms (weights of each measure sum to 1).
pub(crate) fn wasserstein1(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let mut events: Vec<(f64, f64)> = a
        .iter()
        .map(|&(x, w)| (x, w))
        .chain(b.iter().map(|&(x, w)| (x, -w)))
        .collect();
    events.sort_by(|p, q| p.0.total_cmp(&q.0));
    let mut diff = 0.0;
    let mut total = 0.0;
    for pair in events.windows(2) {
        diff += pair[0].1;
        total += diff.abs() * (pair[1].0 - pair[0].0);
    }
    total
}

/// `‖VᵀV − I‖_max` of a basis: its loss of orthonormality.
pub(crate) fn orthonormality_error(basis: &crate::Basis) -> f64 {
    let (n, m) = (basis.dim(), basis.len());
    let columns: Vec<Vec<f64>> = (0..m).map(|j| basis.vector(j).unwrap()).collect();
    let v = DMatrix::from_fn(n, m, |i, j| columns[j][i]);
    (v.transpose() * &v - DMatrix::identity(m, m)).amax()
}

#[test]
fn wasserstein_of_shifted_point_masses() {
    // W1(δ_0, δ_2) = 2; W1 of two-point uniform measures {0,1} vs {0,3} = 1.
    assert!((wasserstein1(&[(0.0, 1.0)], &[(2.0, 1.0)]) - 2.0).abs() < 1e-15);
    assert!(
        (wasserstein1(&[(0.0, 0.5), (1.0, 0.5)], &[(0.0, 0.5), (3.0, 0.5)]) - 1.0).abs() < 1e-15
    );
}

#[test]
fn orthogonal_is_orthogonal() {
    let q = orthogonal(50, 3);
    assert!((q.transpose() * &q - DMatrix::identity(50, 50)).amax() < 1e-13);
}
