//! The result of a class-wise analysis, as written to `OUT/spectrum.json` and read back by
//! `plot`, `compare` and `report`. Field names are the JSON keys.

use saddlescope_data::Group;
use saddlescope_spectral::{BasisPrecision, SpectrumEstimate};
use serde::{Deserialize, Serialize};

/// Spectrum of one class-wise (or the all-classes) Hessian, with its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassSpectrum {
    /// Class index, or `None` for the all-classes Hessian.
    pub class: Option<usize>,
    /// Human-readable class name (`"3"`, `"airplane"`, or `"all"`).
    pub name: String,
    /// Head/medium/tail group of the class (`None` for `all`).
    pub group: Option<Group>,
    /// Number of samples whose mean loss this Hessian is of.
    pub samples: usize,
    /// Training-set count of the class in the long-tailed split (what defines the group).
    pub train_count: usize,
    /// λ_min / λ_max (negative at a saddle); `null` when λ_max ≤ 0.
    pub ratio_min_max: Option<f64>,
    /// Whether the class sits at a saddle (see [`crate::SaddleRule`]).
    pub saddle: bool,
    /// Every estimate of `saddlescope spectrum`, with the same keys.
    #[serde(flatten)]
    pub estimate: SpectrumEstimate,
}

/// A class the analysis could not estimate (e.g. no samples in the split), kept in the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedClass {
    /// Class index.
    pub class: usize,
    /// Why it was skipped.
    pub reason: String,
}

/// The checkpoint an analysis was run on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Path as given on the command line.
    pub path: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The checkpoint's own metadata (ours), or what the flags supplied (PyTorch files).
    pub metadata: serde_json::Value,
}

/// Settings of an analysis run (what `--resume` must match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisParams {
    /// Lanczos steps per probe.
    pub lanczos_steps: usize,
    /// SLQ probes per Hessian.
    pub probes: usize,
    /// Seed of the probe vectors.
    pub seed: u64,
    /// Element type of the HVPs (`"f32"` or `"f64"`).
    pub dtype: String,
    /// `Some(n)`: only the first n samples of each class; `None`: all of them.
    pub samples_per_class: Option<usize>,
    /// `"ce"` (plain cross-entropy) or `"train"` (the checkpoint's training loss).
    pub loss: String,
    /// Ratio |λ_min|/λ_max from which a negative λ_min counts as a saddle.
    pub saddle_ratio: f64,
    /// Parameter-name prefixes the Hessian is restricted to (empty: all parameters).
    pub param_filter: Vec<String>,
    /// Relative tolerance for the extreme eigenvalues.
    pub tol: f64,
    /// Number of top eigenvalues reported.
    pub top_k: usize,
    /// Storage of the Lanczos basis (`"f64"` or `"f32"`, `--basis`): f32 limits the Ritz
    /// values to ~1e-7 relative accuracy. Files written before the flag existed used f64, the
    /// default when the key is absent.
    #[serde(default)]
    pub basis: BasisPrecision,
}

/// How well tr H_all = Σ_c π_c tr H_c holds with the shared probes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TraceIdentity {
    /// tr H_all as estimated.
    pub all: f64,
    /// Σ_c π_c tr H_c.
    pub weighted_sum: f64,
    /// |all − weighted_sum| / max(|all|, tiny).
    pub relative_residual: f64,
}

/// Everything `analyze` found, the content of `spectrum.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalysisReport {
    /// The checkpoint analysed.
    pub checkpoint: CheckpointInfo,
    /// Data-set spec string.
    pub dataset: String,
    /// `"train"` or `"test"`.
    pub split: String,
    /// Settings.
    pub params: AnalysisParams,
    /// Per-class results, in class order.
    pub classes: Vec<ClassSpectrum>,
    /// Classes that were asked for but could not be estimated.
    pub skipped: Vec<SkippedClass>,
    /// The all-classes Hessian (`None` with `--no-all`).
    pub all: Option<ClassSpectrum>,
    /// The trace identity, when every class and `all` were estimated.
    pub trace_identity: Option<TraceIdentity>,
    /// Version of saddlescope that wrote the file.
    pub version: String,
}
