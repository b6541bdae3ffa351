//! Smoothing raw Ritz measures into a spectral density on a grid, without any new operator
//! application.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::slq::RitzMeasure;

/// Width of the Gaussian kernel placed on every Ritz node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelWidth {
    /// PyHessian's rule (`density_generate`, Yao et al. 2020): variance
    /// `variance_factor · max(1, hi − lo)` where [lo, hi] is the grid range; the default
    /// factor 1e-5 gives σ ≈ 0.003 · √range. Narrow: meant for many bins.
    PyHessian {
        /// Variance per unit of grid range (PyHessian: 1e-5).
        variance_factor: f64,
    },
    /// A fixed standard deviation σ in the grid's units (λ, or log10|λ|). Wider kernels give
    /// smoother curves from few probes; Lin, Saad & Yang (2016) tie σ to the node spacing.
    Sigma {
        /// The standard deviation.
        sigma: f64,
    },
}

/// Parameters of [`density`] and [`log_abs_density`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityParams {
    /// Grid points (PyHessian: 10,000).
    pub bins: usize,
    /// Margin added beyond the extreme nodes: the grid spans
    /// [min node − margin, max node + margin] (PyHessian's `overhead`, 0.01).
    pub margin: f64,
    /// Kernel width (PyHessian's rule by default).
    pub width: KernelWidth,
}

impl Default for DensityParams {
    fn default() -> Self {
        Self {
            bins: 10_000,
            margin: 0.01,
            width: KernelWidth::PyHessian {
                variance_factor: 1e-5,
            },
        }
    }
}

impl DensityParams {
    /// Checks `bins ≥ 2`, a finite margin ≥ 0 and a positive finite width.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming `density.bins`, `density.margin` or `density.width`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.bins < 2 {
            return Err(Error::param("density.bins", self.bins, "at least 2"));
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(Error::param(
                "density.margin",
                self.margin,
                "a finite number >= 0",
            ));
        }
        let w = match self.width {
            KernelWidth::PyHessian { variance_factor } => variance_factor,
            KernelWidth::Sigma { sigma } => sigma,
        };
        if !(w.is_finite() && w > 0.0) {
            return Err(Error::param("density.width", w, "a finite number > 0"));
        }
        Ok(())
    }
}

/// A density sampled on an equispaced grid; `Σ values · (grid[1] − grid[0]) = 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Density {
    /// Grid points, ascending and equispaced.
    pub grid: Vec<f64>,
    /// Density values at the grid points.
    pub values: Vec<f64>,
}

/// Gaussian-broadened spectral density of the average of the probes' measures:
/// `φ(x) ∝ (1/K) Σ_probes Σ_i w_i N(x; θ_i, σ²)` on `bins` points spanning
/// [min node − margin, max node + margin], normalized so that the Riemann sum
/// `Σ φ(x_b) Δx` is 1 (as PyHessian's `density_generate`).
///
/// With PyHessian's width rule σ = √(1e-5 · range) exceeds the 0.01 margin once the range
/// passes 10, so the kernels of the extreme nodes are partly cut off by the grid ends and
/// the normalization scales the rest up slightly; PyHessian behaves the same.
///
/// One difference from PyHessian: its grid spans the *mean over probes* of each probe's
/// extreme node, so a probe's outlying node can fall off the grid; here the grid spans all
/// nodes. With 100 steps the extreme Ritz values agree across probes, so both coincide.
///
/// # Errors
/// [`Error::EmptyMeasures`], [`Error::InvalidParam`], [`Error::DegenerateDensity`] (kernel
/// far narrower than the bins).
///
/// ```
/// use saddlescope_spectral::{density, DensityParams, KernelWidth, RitzMeasure};
/// let m = RitzMeasure { nodes: vec![-1.0, 1.0], weights: vec![0.5, 0.5] };
/// let p = DensityParams { bins: 401, margin: 1.0, width: KernelWidth::Sigma { sigma: 0.1 } };
/// let d = density(&[m], &p).unwrap();
/// let dx = d.grid[1] - d.grid[0];
/// assert!((d.values.iter().sum::<f64>() * dx - 1.0).abs() < 1e-12);
/// ```
pub fn density(measures: &[RitzMeasure], params: &DensityParams) -> Result<Density, Error> {
    smooth(measures, params, |theta| theta)
}

/// Density of `log10 |λ|`: the same smoothing applied to the nodes mapped to
/// `log10(max(|θ|, floor))`, with the grid, margin and kernel width in decades.
///
/// Signs are dropped (pass only the measures, or split the nodes by sign beforehand, to see
/// one side); nodes with |θ| < floor pile up at log10(floor). Useful for Hessians whose
/// outliers sit decades above the bulk (Papyan 2020 plots spectra on such axes).
///
/// # Errors
/// As [`density`], plus [`Error::InvalidParam`] for a floor that is not positive and finite.
pub fn log_abs_density(
    measures: &[RitzMeasure],
    params: &DensityParams,
    floor: f64,
) -> Result<Density, Error> {
    if !(floor.is_finite() && floor > 0.0) {
        return Err(Error::param("floor", floor, "a finite number > 0"));
    }
    smooth(measures, params, |theta| theta.abs().max(floor).log10())
}

/// The shared smoothing, on nodes mapped by `map`.
fn smooth(
    measures: &[RitzMeasure],
    params: &DensityParams,
    map: impl Fn(f64) -> f64,
) -> Result<Density, Error> {
    params.validate()?;
    let probes = measures.len() as f64;
    let atoms: Vec<(f64, f64)> = measures
        .iter()
        .flat_map(|m| {
            m.nodes
                .iter()
                .zip(&m.weights)
                .map(|(&t, &w)| (map(t), w / probes))
        })
        .collect();
    if atoms.is_empty() {
        return Err(Error::EmptyMeasures);
    }
    let lo = atoms.iter().map(|a| a.0).fold(f64::INFINITY, f64::min) - params.margin;
    let hi = atoms.iter().map(|a| a.0).fold(f64::NEG_INFINITY, f64::max) + params.margin;
    let variance = match params.width {
        KernelWidth::PyHessian { variance_factor } => variance_factor * (hi - lo).max(1.0),
        KernelWidth::Sigma { sigma } => sigma * sigma,
    };
    let bins = params.bins;
    let step = (hi - lo) / (bins - 1) as f64;
    let grid: Vec<f64> = (0..bins).map(|b| lo + step * b as f64).collect();
    let norm = 1.0 / (2.0 * std::f64::consts::PI * variance).sqrt();
    let at = |x: &f64| {
        atoms
            .iter()
            .map(|&(t, w)| w * norm * (-(x - t) * (x - t) / (2.0 * variance)).exp())
            .sum()
    };
    let mut values: Vec<f64> = grid.par_iter().map(at).collect();
    let mass = values.iter().sum::<f64>() * step;
    if !(mass.is_finite() && mass > 0.0) {
        return Err(Error::DegenerateDensity {
            sigma: variance.sqrt(),
            bin_width: step,
        });
    }
    values.iter_mut().for_each(|v| *v /= mass);
    Ok(Density { grid, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_gives_a_normalized_gaussian_of_the_stated_width() {
        let m = RitzMeasure {
            nodes: vec![0.5],
            weights: vec![1.0],
        };
        let sigma = 0.05;
        let p = DensityParams {
            bins: 2001,
            margin: 0.5,
            width: KernelWidth::Sigma { sigma },
        };
        let d = density(&[m], &p).unwrap();
        let dx = d.grid[1] - d.grid[0];
        // Grid [0, 1]; Riemann sum 1 to rounding; the peak is 1/(σ√(2π)) to 1e-6 (the ±10σ
        // window holds all mass, so normalization changes nothing at that level).
        assert_eq!((d.grid[0], d.grid[2000]), (0.0, 1.0));
        assert!((d.values.iter().sum::<f64>() * dx - 1.0).abs() < 1e-12);
        let peak = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        assert!((d.values[1000] / peak - 1.0).abs() < 1e-6);
    }

    #[test]
    fn pyhessian_default_width_and_probe_averaging() {
        // Two probes with one node each; range 0.62 < 1, so the variance is 1e-5 (σ = 3.16e-3).
        let a = RitzMeasure {
            nodes: vec![-0.3],
            weights: vec![1.0],
        };
        let b = RitzMeasure {
            nodes: vec![0.3],
            weights: vec![1.0],
        };
        let d = density(&[a, b], &DensityParams::default()).unwrap();
        assert_eq!(d.grid.len(), 10_000);
        assert!((d.grid[0] + 0.31).abs() < 1e-12 && (d.grid[9999] - 0.31).abs() < 1e-12);
        let sigma = 1e-5f64.sqrt();
        let peak = 0.5 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        let max = d.values.iter().cloned().fold(0.0, f64::max);
        // The margin 0.01 = 3.16σ clips 7.8e-4 of each kernel's mass, which the normalization
        // puts back (+0.08%); the grid point nearest a node is within Δx/2 = 0.01σ of it
        // (-0.005%). So the sampled peak is within 0.2% of 0.5/(σ√(2π)).
        assert!((max / peak - 1.0).abs() < 2e-3, "{max} vs {peak}");
    }

    #[test]
    fn log_abs_maps_nodes_to_decades() {
        let m = RitzMeasure {
            nodes: vec![-100.0, 1e-12, 10.0],
            weights: vec![0.25, 0.25, 0.5],
        };
        let p = DensityParams {
            bins: 601,
            margin: 0.0,
            width: KernelWidth::Sigma { sigma: 0.05 },
        };
        let d = log_abs_density(&[m], &p, 1e-6).unwrap();
        // Nodes at log10 = 2, -6 (floored) and 1: the grid spans exactly [-6, 2].
        assert!((d.grid[0] + 6.0).abs() < 1e-12 && (d.grid[600] - 2.0).abs() < 1e-12);
        assert!(log_abs_density(&[], &p, 0.0).is_err());
    }

    #[test]
    fn rejects_empty_and_degenerate_inputs() {
        assert!(matches!(
            density(&[], &DensityParams::default()),
            Err(Error::EmptyMeasures)
        ));
        let m = RitzMeasure {
            nodes: vec![0.0, 100.0],
            weights: vec![0.5, 0.5],
        };
        let p = DensityParams {
            bins: 3,
            margin: 0.0,
            width: KernelWidth::Sigma { sigma: 1e-3 },
        };
        // Grid points 0, 50, 100: nodes sit on points 0 and 2, so the density is fine ...
        assert!(density(std::slice::from_ref(&m), &p).is_ok());
        // ... but with a margin the points miss every kernel by 1,000σ and underflow.
        let p = DensityParams { margin: 1.0, ..p };
        assert!(matches!(
            density(&[m], &p),
            Err(Error::DegenerateDensity { .. })
        ));
    }
}
