//! The result of a class-wise analysis, as written to `OUT/spectrum.json` (and, one row per
//! class, `OUT/summary.csv`) and read back by `plot`, `compare` and `report`. Field names are
//! the JSON keys.

use std::path::Path;

use saddlescope_spectral::{BasisPrecision, SpectrumEstimate};
use serde::{Deserialize, Serialize};

use crate::verdict::LEGACY_REASON;
use crate::{
    write_atomically, AnalysisDir, CheckpointOrigin, Error, FirstOrder, Group, ModelHealth,
    VerdictKind, VerdictRule,
};

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
    /// Whether [`verdict`](Self::verdict) is `saddle`, for readers of this key. Files written
    /// before verdicts existed hold the curvature-only rule of then: λ_min < 0 beyond its
    /// bound and |λ_min|/λ_max ≥ the saddle ratio, without the stationarity check.
    pub saddle: bool,
    /// The verdict on the class's loss at the weights (`undetermined` in files written before
    /// verdicts existed).
    #[serde(default)]
    pub verdict: VerdictKind,
    /// Why, in words, with the numbers it used.
    #[serde(default = "legacy_reason")]
    pub verdict_reason: String,
    /// The class loss, accuracy, gradient and quadratic-model terms the verdict weighs
    /// (absent from files written before verdicts existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_order: Option<FirstOrder>,
    /// Every estimate of `saddlescope spectrum`, with the same keys.
    #[serde(flatten)]
    pub estimate: SpectrumEstimate,
}

/// The verdict reason of a file written before verdicts existed.
fn legacy_reason() -> String {
    LEGACY_REASON.into()
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
    /// The checkpoint's own metadata (ours), or what the flags supplied (foreign files).
    pub metadata: CheckpointOrigin,
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
    /// The verdict's other thresholds; absent from files written before verdicts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictRule>,
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
    /// How well the model fits its training split (absent from files written before
    /// verdicts existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ModelHealth>,
    /// Version of saddlescope that wrote the file.
    pub version: String,
}

impl AnalysisReport {
    /// Whether some class of the analysis is in `group`.
    pub fn has_group(&self, group: Group) -> bool {
        self.classes.iter().any(|c| c.group == Some(group))
    }
}

/// Writes `spectrum.json` and `summary.csv` into `dir`, each atomically.
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn write_report(dir: &AnalysisDir, report: &AnalysisReport) -> Result<(), Error> {
    let path = dir.spectrum();
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::encode(&path, e))?;
    write_atomically(&path, json).map_err(|e| Error::io(&path, e))?;
    let summary = dir.summary();
    write_atomically(&summary, summary_csv(report)).map_err(|e| Error::io(&summary, e))
}

/// One CSV row per class (and `all`): the content of `summary.csv`. The first-order columns
/// are empty for results written before verdicts existed; the reason is quoted.
pub fn summary_csv(report: &AnalysisReport) -> String {
    let mut csv = String::from(
        "class,name,group,train_count,samples,lambda_min,lambda_min_bound,lambda_max,lambda_max_bound,ratio_min_max,trace,trace_stderr,negative_mass,converged,loss,accuracy,grad_norm,grad_curvature,slope_min,radius,gradient_decrease,slope_term,curvature_term,verdict,verdict_reason\n",
    );
    for r in report.classes.iter().chain(&report.all) {
        let e = &r.estimate;
        let first_order = r.first_order.map_or_else(
            || ",".repeat(8),
            |f| {
                format!(
                    "{:e},{:.6},{:e},{:e},{:e},{:e},{:e},{:e},{:e}",
                    f.loss,
                    f.accuracy,
                    f.grad_norm,
                    f.grad_curvature,
                    f.slope_min,
                    f.radius,
                    f.gradient_decrease,
                    f.slope_term,
                    f.curvature_term
                )
            },
        );
        csv.push_str(&format!(
            "{},{},{},{},{},{:e},{:e},{:e},{:e},{},{:e},{},{:.6},{},{first_order},{},\"{}\"\n",
            r.class.map_or("all".to_string(), |c| c.to_string()),
            r.name.replace(',', ";"),
            r.group
                .map_or(String::new(), |g| format!("{g:?}").to_lowercase()),
            r.train_count,
            r.samples,
            e.lambda_min,
            e.lambda_min_bound,
            e.lambda_max,
            e.lambda_max_bound,
            r.ratio_min_max.map_or(String::new(), |x| format!("{x:.6}")),
            e.trace,
            e.trace_stderr.map_or(String::new(), |x| format!("{x:e}")),
            e.negative_mass,
            e.converged,
            r.verdict,
            r.verdict_reason.replace('"', "\"\""),
        ));
    }
    csv
}

/// Reads a `spectrum.json` back.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] naming the file.
pub fn read_report(path: &Path) -> Result<AnalysisReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HealthStatus;

    /// A `spectrum.json` written by `saddlescope analyze` (the tiny synthetic run of the CLI
    /// tests with `--sam 0.05 --drw`, 20 Lanczos steps, 2 probes), its densities and Ritz
    /// measures cut to a few points to keep it small.
    const SPECTRUM: &str = include_str!("../tests/fixtures/spectrum.json");

    /// The same analysis of that checkpoint with its saddlescope metadata stripped (`--arch
    /// mlp:8 --dataset ...`), cut the same way.
    const FOREIGN: &str = include_str!("../tests/fixtures/spectrum_foreign.json");

    fn written(report: &AnalysisReport) -> String {
        let dir = tempfile::tempdir().unwrap();
        let analysis = AnalysisDir::new(dir.path());
        write_report(&analysis, report).unwrap();
        assert_eq!(
            std::fs::read_to_string(analysis.summary()).unwrap(),
            summary_csv(report)
        );
        assert_eq!(read_report(&analysis.spectrum()).unwrap().version, "0.1.0");
        std::fs::read_to_string(analysis.spectrum()).unwrap()
    }

    /// A report written before the Lanczos step count was named `steps` (key `m`) reads as
    /// the same report, and is written back with `steps`.
    #[test]
    fn the_old_step_key_m_is_still_read() {
        let old = SPECTRUM.replace("\"steps\": 20,", "\"m\": 20,");
        assert_ne!(old, SPECTRUM);
        let report: AnalysisReport = serde_json::from_str(&old).unwrap();
        assert_eq!(written(&report), SPECTRUM);
    }

    #[test]
    fn spectrum_json_reads_and_writes_back_byte_for_byte() {
        let report: AnalysisReport = serde_json::from_str(SPECTRUM).unwrap();
        assert_eq!(written(&report), SPECTRUM);
        assert_eq!(report.classes.len(), 3);
        assert_eq!(
            report.classes.iter().map(|c| c.group).collect::<Vec<_>>(),
            [Some(Group::Head), Some(Group::Medium), Some(Group::Tail)]
        );
        let all = report.all.as_ref().unwrap();
        assert_eq!((all.class, all.name.as_str()), (None, "all"));
        assert!(report.trace_identity.unwrap().relative_residual < 1e-10);
        assert_eq!(report.params.basis, BasisPrecision::F64);
        assert!(Group::ALL.into_iter().all(|g| report.has_group(g)));
        let test = report.checkpoint.metadata.test().unwrap();
        assert_eq!(test.class_accuracy, [0.9, 1.0, 0.0]);
        let health = report.health.as_ref().unwrap();
        assert_eq!((health.status, health.samples), (HealthStatus::Trained, 56));
        assert_eq!(report.params.verdict, Some(VerdictRule::default()));
        let verdicts: Vec<VerdictKind> = report.classes.iter().map(|c| c.verdict).collect();
        use VerdictKind::*;
        assert_eq!(verdicts, [MinimumLike, NotStationary, Saddle]);
        for c in report.classes.iter().chain(&report.all) {
            assert_eq!(c.saddle, c.verdict == Saddle);
            assert!(c.first_order.unwrap().is_finite());
        }
        let csv = summary_csv(&report);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 5);
        assert!(rows[1].starts_with("0,0,head,40,40,"), "{}", rows[1]);
        assert!(rows[4].starts_with("all,all,,56,56,"), "{}", rows[4]);
        assert!(
            rows[2].ends_with(",not_stationary,\"the gradient dominates: at r = 0.685 the negative curvature lowers the class loss's quadratic model by ½|λ_min|·r² = 0.0222, the gradient by 0.0292 (‖g‖ = 0.148, curvature along g 0.377), and the slope along u_min is |g·u_min|·r = 5.23e-4: gradient ratio 1.31 > 1.00, so λ_min = -0.0948 (|λ_min|/λ_max = 0.239) does not make a saddle: the weights are not near a stationary point of this class's loss\""),
            "{}",
            rows[2]
        );
        assert_eq!(rows[0].split(',').count(), rows[1].split(',').count());
    }

    #[test]
    fn a_report_written_before_verdicts_reads_as_undetermined_without_first_order_numbers() {
        let mut value: serde_json::Value = serde_json::from_str(SPECTRUM).unwrap();
        value.as_object_mut().unwrap().remove("health").unwrap();
        value["params"].as_object_mut().unwrap().remove("verdict");
        let classes = value["classes"].as_array_mut().unwrap();
        for c in classes.iter_mut() {
            let c = c.as_object_mut().unwrap();
            for key in ["verdict", "verdict_reason", "first_order"] {
                c.remove(key).unwrap();
            }
        }
        let report: AnalysisReport = serde_json::from_value(value).unwrap();
        assert!(report.health.is_none() && report.params.verdict.is_none());
        for c in &report.classes {
            assert_eq!(c.verdict, VerdictKind::Undetermined);
            assert_eq!(c.verdict_reason, crate::verdict::LEGACY_REASON);
            assert!(c.first_order.is_none());
        }
        // The first-order columns stay, empty.
        let csv = summary_csv(&report);
        let row = csv.lines().nth(1).unwrap();
        assert!(
            row.contains(",true,,,,,,,,,,undetermined,\"written before"),
            "{row}"
        );
    }

    #[test]
    fn a_foreign_analysis_reads_and_writes_back_byte_for_byte() {
        let report: AnalysisReport = serde_json::from_str(FOREIGN).unwrap();
        assert_eq!(written(&report), FOREIGN);
        assert_eq!(
            report.checkpoint.metadata,
            CheckpointOrigin::Foreign(crate::ForeignCheckpoint {
                arch: Some("mlp:8".into()),
                classes: 3
            })
        );
    }

    #[test]
    fn a_report_without_the_basis_key_reads_as_f64_and_bad_files_are_named() {
        let mut value: serde_json::Value = serde_json::from_str(SPECTRUM).unwrap();
        value["params"]
            .as_object_mut()
            .unwrap()
            .remove("basis")
            .unwrap();
        let report: AnalysisReport = serde_json::from_value(value).unwrap();
        assert_eq!(report.params.basis, BasisPrecision::F64);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spectrum.json");
        std::fs::write(&path, "{\"checkpoint\": 3}").unwrap();
        let err = read_report(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        let missing = read_report(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(missing, Error::Io { .. }));
    }
}
