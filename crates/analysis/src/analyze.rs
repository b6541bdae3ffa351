//! The class-wise analysis: for each class c, the Hessian of the mean loss over c's samples
//! (eval-mode BN, no augmentation), estimated with the same probe vectors for every class;
//! then the all-classes Hessian and the trace identity tr H_all = Σ_c π_c tr H_c.
//! Each Hessian's result is written atomically as soon as it is done, so an interrupted run
//! keeps them and `resume` skips them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::DType;
use saddlescope_data::{Group, Split};
use saddlescope_nn::{Batch, Loss, Model};
use saddlescope_spectral::{estimate_spectrum_with_progress, SpectrumEstimate, SpectrumParams};
use saddlescope_train::io::write_atomic;
use serde::{Deserialize, Serialize};

use crate::operator::HvpSettings;
use crate::report::{
    AnalysisParams, AnalysisReport, CheckpointInfo, ClassSpectrum, SkippedClass, TraceIdentity,
};
use crate::setup::HessianSetup;
use crate::verdict::SaddleRule;
use crate::Error;

/// Which loss's Hessian is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HessianLoss {
    /// Plain cross-entropy, as the paper's analysis.
    #[default]
    Ce,
    /// The checkpoint's training loss (DRW weights, LDAM margins, VS adjustments).
    Train,
}

/// How to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeParams {
    /// Estimator settings (m, probes, seed, top-k, tol). The probe stream is the same for
    /// every class.
    pub spectrum: SpectrumParams,
    /// `Some(n)`: the first n samples of each class in data-set order; `None`: all.
    pub samples_per_class: Option<usize>,
    /// Which loss.
    pub loss: HessianLoss,
    /// Restrict the per-class part to these classes (`None`: all).
    pub class_ids: Option<Vec<usize>>,
    /// Also estimate the all-classes Hessian.
    pub include_all: bool,
    /// The saddle rule.
    pub saddle: SaddleRule,
    /// Parameter-name prefixes of the Hessian block (empty: all parameters).
    pub param_filter: Vec<String>,
    /// Samples per HVP batch (memory only; results agree to rounding).
    pub batch_size: usize,
    /// Element type of the HVPs. Default f32: half the bytes and GEMM time of f64 (an
    /// analysis of the MNIST `cnn` 1.7x faster), Ritz values within ~1e-6 relative of
    /// f64's and residual bounds widened to f32's rounding (~1e-5 ‖H‖); f64 certifies to
    /// ~1e-13 ‖H‖. The Lanczos basis is f64 either way (`spectrum.slq.basis`).
    pub dtype: DType,
    /// HVP engine and memory budget (results do not depend on them beyond rounding).
    pub hvp: HvpSettings,
}

impl Default for AnalyzeParams {
    fn default() -> Self {
        Self {
            spectrum: SpectrumParams::default(),
            samples_per_class: None,
            loss: HessianLoss::Ce,
            class_ids: None,
            include_all: true,
            saddle: SaddleRule::default(),
            param_filter: Vec::new(),
            batch_size: 256,
            dtype: DType::F32,
            hvp: HvpSettings::default(),
        }
    }
}

/// What is analysed: a model and the split whose class samples define the Hessians.
pub struct Subject<'a> {
    /// The model (any dtype; converted to the analysis dtype).
    pub model: &'a Model,
    /// The split the samples come from (the long-tailed train subset, or the test split).
    pub split: &'a Split,
    /// `"train"` or `"test"`.
    pub split_name: String,
    /// Training-set counts per class (define groups and the training loss).
    pub train_counts: &'a [usize],
    /// Group of each class.
    pub groups: &'a [Group],
    /// Name of each class.
    pub class_names: &'a [String],
    /// The checkpoint's training loss, for [`HessianLoss::Train`].
    pub training_loss: Option<Loss>,
    /// Where the weights came from.
    pub checkpoint: CheckpointInfo,
    /// Data-set spec string.
    pub dataset: String,
}

/// Progress reports of a run.
pub trait AnalysisObserver: Sync {
    /// A Hessian's estimation starts; about `applications` HVPs are planned.
    fn hessian_started(&self, _name: &str, _applications: usize) {}
    /// `done` HVPs of the current Hessian are complete (called from any thread).
    fn applications_done(&self, _done: usize) {}
    /// A Hessian is done (`reused`: taken from an earlier run's file).
    fn hessian_done(&self, _result: &ClassSpectrum, _reused: bool) {}
    /// Something the user should know (clamped settings, skipped classes).
    fn notice(&self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl AnalysisObserver for Quiet {}

/// How [`analyze`] ended.
#[derive(Debug)]
pub enum AnalysisOutcome {
    /// Everything was estimated; the report was written.
    Finished(Box<AnalysisReport>),
    /// Stopped on request; finished Hessians are kept for `resume`.
    Interrupted {
        /// Hessians done so far.
        done: usize,
    },
}

/// What a per-class file must match to be reused by `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ResumeKey {
    sha256: String,
    dataset: String,
    split: String,
    params: AnalysisParams,
}

/// A per-class result file (`OUT/classes/*.json`).
#[derive(Debug, Serialize, Deserialize)]
struct StoredResult {
    key: ResumeKey,
    result: ClassSpectrum,
}

/// Output paths of an analysis directory.
pub struct AnalysisDir(PathBuf);

impl AnalysisDir {
    /// The directory at `path`.
    pub fn new(path: &Path) -> Self {
        Self(path.to_path_buf())
    }
    /// `spectrum.json`.
    pub fn spectrum(&self) -> PathBuf {
        self.0.join("spectrum.json")
    }
    /// `summary.csv`.
    pub fn summary(&self) -> PathBuf {
        self.0.join("summary.csv")
    }
    /// Per-Hessian result files.
    fn part(&self, name: &str) -> PathBuf {
        self.0.join("classes").join(format!("{name}.json"))
    }
    /// `landscape/`: the loss landscapes of `analyze --landscape`, one directory per class.
    pub fn landscapes(&self) -> PathBuf {
        self.0.join("landscape")
    }
    /// `landscape/class-NNNN/`: the loss landscape of class `class`.
    pub fn landscape(&self, class: usize) -> PathBuf {
        self.landscapes().join(class_stem(class))
    }
}

/// `class-NNNN`: the file or directory name of a class's results.
fn class_stem(class: usize) -> String {
    format!("class-{class:04}")
}

/// The JSON-facing description of `params`.
pub fn describe(params: &AnalyzeParams) -> AnalysisParams {
    AnalysisParams {
        lanczos_steps: params.spectrum.slq.steps,
        probes: params.spectrum.slq.probes,
        seed: params.spectrum.slq.seed,
        dtype: if params.dtype == DType::F32 {
            "f32".into()
        } else {
            "f64".into()
        },
        samples_per_class: params.samples_per_class,
        loss: match params.loss {
            HessianLoss::Ce => "ce".into(),
            HessianLoss::Train => "train".into(),
        },
        saddle_ratio: params.saddle.min_ratio,
        param_filter: params.param_filter.clone(),
        tol: params.spectrum.tol,
        top_k: params.spectrum.top_k,
        basis: params.spectrum.slq.basis,
    }
}

/// Runs the class-wise analysis of `subject` into `out` (created), reusing finished
/// Hessians from an earlier run when `resume` is set and their settings match.
pub fn analyze(
    subject: &Subject<'_>,
    params: &AnalyzeParams,
    out: &Path,
    resume: bool,
    observer: &dyn AnalysisObserver,
    stop: &AtomicBool,
) -> Result<AnalysisOutcome, Error> {
    if !(params.saddle.min_ratio.is_finite() && params.saddle.min_ratio >= 0.0) {
        return Err(Error::Usage {
            flag: "--saddle-ratio",
            reason: format!("{} is negative or not finite", params.saddle.min_ratio),
        });
    }
    let setup = HessianSetup::new(subject, params)?;
    let classes = subject.model.classes();
    let class_ids = params
        .class_ids
        .clone()
        .unwrap_or_else(|| (0..classes).collect());
    if let Some(&bad) = class_ids.iter().find(|&&c| c >= classes) {
        return Err(Error::Usage {
            flag: "--class-ids",
            reason: format!("class {bad} does not exist (the checkpoint has {classes} classes)"),
        });
    }
    let dir = AnalysisDir::new(out);
    std::fs::create_dir_all(out.join("classes")).map_err(|e| Error::io(out, e))?;
    let key = ResumeKey {
        sha256: subject.checkpoint.sha256.clone(),
        dataset: subject.dataset.clone(),
        split: subject.split_name.clone(),
        params: describe(params),
    };
    let mut context = Context {
        subject,
        params,
        setup: &setup,
        dir: &dir,
        key: &key,
        resume,
        observer,
    };

    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut class_weights = Vec::new();
    for &c in &class_ids {
        if stop.load(Ordering::SeqCst) {
            return Ok(AnalysisOutcome::Interrupted {
                done: results.len(),
            });
        }
        let batches = setup.class_batches(c)?;
        if batches.is_empty() {
            let reason = format!(
                "no samples of class {c} in the {} split",
                subject.split_name
            );
            observer.notice(&format!("skipping class {c}: {reason}"));
            skipped.push(SkippedClass { class: c, reason });
            continue;
        }
        let weight: f64 = batches
            .iter()
            .map(|b| setup.loss().batch_weight(b.labels()))
            .sum::<Result<f64, _>>()?;
        class_weights.push(weight);
        results.push(context.estimate(Some(c), batches)?);
    }
    let all = if params.include_all {
        if stop.load(Ordering::SeqCst) {
            return Ok(AnalysisOutcome::Interrupted {
                done: results.len(),
            });
        }
        let mut batches = Vec::new();
        for c in 0..classes {
            batches.extend(setup.class_batches(c)?);
        }
        Some(context.estimate(None, batches)?)
    } else {
        None
    };
    let trace_identity = match &all {
        Some(all) if skipped.is_empty() && class_ids.len() == classes => {
            let total: f64 = class_weights.iter().sum();
            let weighted_sum: f64 = results
                .iter()
                .zip(&class_weights)
                .map(|(r, w)| w / total * r.estimate.trace)
                .sum();
            let scale = all.estimate.trace.abs().max(f64::MIN_POSITIVE);
            Some(TraceIdentity {
                all: all.estimate.trace,
                weighted_sum,
                relative_residual: (all.estimate.trace - weighted_sum).abs() / scale,
            })
        }
        _ => None,
    };
    let report = AnalysisReport {
        checkpoint: subject.checkpoint.clone(),
        dataset: subject.dataset.clone(),
        split: subject.split_name.clone(),
        params: describe(params),
        classes: results,
        skipped,
        all,
        trace_identity,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    write_report(&dir, &report)?;
    Ok(AnalysisOutcome::Finished(Box::new(report)))
}

/// Everything one Hessian estimate needs.
struct Context<'a, 's> {
    subject: &'a Subject<'s>,
    params: &'a AnalyzeParams,
    setup: &'a HessianSetup<'s>,
    dir: &'a AnalysisDir,
    key: &'a ResumeKey,
    resume: bool,
    observer: &'a dyn AnalysisObserver,
}

impl Context<'_, '_> {
    /// Estimates the Hessian of class `class` (`None`: all classes) over `batches`, or
    /// reuses a matching earlier result.
    fn estimate(
        &mut self,
        class: Option<usize>,
        batches: Vec<Batch>,
    ) -> Result<ClassSpectrum, Error> {
        let name = class.map_or("all".to_string(), |c| self.subject.class_names[c].clone());
        let file_name = class.map_or("all".to_string(), class_stem);
        let path = self.dir.part(&file_name);
        if self.resume && path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let stored: StoredResult = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            if &stored.key == self.key {
                self.observer.hessian_done(&stored.result, true);
                return Ok(stored.result);
            }
            self.observer.notice(&format!(
                "{}: settings differ from this run, recomputing",
                path.display()
            ));
        }
        let samples: usize = batches.iter().map(Batch::len).sum();
        let op = self.setup.operator(batches)?;
        let spectrum = self.clamped(op.hvp().dim());
        self.observer
            .hessian_started(&name, spectrum.expected_applications(op.hvp().dim()));
        let progress = |done: usize| self.observer.applications_done(done);
        let estimate =
            estimate_spectrum_with_progress(&op, &spectrum, Some(&progress)).map_err(|source| {
                Error::Spectral {
                    class: name.clone(),
                    source,
                }
            })?;
        let result = self.record(class, name, samples, estimate);
        let stored = StoredResult {
            key: self.key.clone(),
            result,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| Error::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &json).map_err(|e| Error::io(&path, e))?;
        self.observer.hessian_done(&stored.result, false);
        Ok(stored.result)
    }

    /// The spectral settings; a Lanczos run never takes more steps than the dimension (the
    /// estimators cap m at n themselves), which the user is told about.
    fn clamped(&self, dim: usize) -> SpectrumParams {
        let spectrum = self.params.spectrum.clone();
        if spectrum.slq.steps > dim {
            self.observer.notice(&format!(
                "--lanczos-steps {} exceeds the {dim} parameters of the Hessian block; each run stops after {dim} steps",
                spectrum.slq.steps
            ));
        }
        spectrum
    }

    fn record(
        &self,
        class: Option<usize>,
        name: String,
        samples: usize,
        estimate: SpectrumEstimate,
    ) -> ClassSpectrum {
        ClassSpectrum {
            class,
            name,
            group: class.map(|c| self.subject.groups[c]),
            samples,
            train_count: class.map_or(self.subject.train_counts.iter().sum(), |c| {
                self.subject.train_counts[c]
            }),
            ratio_min_max: SaddleRule::ratio(&estimate),
            saddle: self.params.saddle.is_saddle(&estimate),
            estimate,
        }
    }
}

/// Writes `spectrum.json` and `summary.csv` atomically.
pub fn write_report(dir: &AnalysisDir, report: &AnalysisReport) -> Result<(), Error> {
    let path = dir.spectrum();
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    write_atomic(&path, &json).map_err(|e| Error::io(&path, e))?;
    let summary = dir.summary();
    write_atomic(&summary, summary_csv(report).as_bytes()).map_err(|e| Error::io(&summary, e))
}

/// One CSV row per class (and `all`).
pub fn summary_csv(report: &AnalysisReport) -> String {
    let mut csv = String::from(
        "class,name,group,train_count,samples,lambda_min,lambda_min_bound,lambda_max,lambda_max_bound,ratio_min_max,trace,trace_stderr,negative_mass,converged,saddle\n",
    );
    for r in report.classes.iter().chain(&report.all) {
        let e = &r.estimate;
        csv.push_str(&format!(
            "{},{},{},{},{},{:e},{:e},{:e},{:e},{},{:e},{},{:.6},{},{}\n",
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
            r.saddle,
        ));
    }
    csv
}

/// Reads a `spectrum.json` back.
pub fn read_report(path: &Path) -> Result<AnalysisReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}
