//! The class-wise analysis: for each class c, the Hessian of the mean loss over c's samples
//! (eval-mode BN, no augmentation), estimated with the same probe vectors for every class;
//! then the all-classes Hessian and the trace identity tr H_all = Σ_c π_c tr H_c.
//! Each Hessian's result is written atomically as soon as it is done, so an interrupted run
//! keeps them and `resume` skips them. The Hessians are planned first (`plan`); a shard
//! (`--shard I/N`) estimates its part of the plan and leaves the report to `merge`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::DType;
use saddlescope_data::Split;
use saddlescope_nn::{Batch, Loss, Model};
use saddlescope_results::{
    read_part, write_part, write_report, AnalysisDir, AnalysisParams, AnalysisReport,
    CheckpointInfo, ClassSpectrum, Group, HessianPart, ModelHealth, PartKey, Shard, VerdictKind,
    VerdictRule,
};
use saddlescope_spectral::{estimate_spectrum_with_progress, SpectrumEstimate, SpectrumParams};

use crate::operator::HvpSettings;

use crate::health::model_health;
use crate::setup::HessianSetup;
use crate::verdict::{assess, check_verdict_rule, Assessment, SaddleRule};
use crate::{plan, Error, Param};

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
    /// The saddle rule (when negative curvature is significant).
    pub saddle: SaddleRule,
    /// The verdict's other thresholds: stationarity and model health.
    pub verdict: VerdictRule,
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
    /// Estimate only this shard's part of the Hessians (`None`: all of them). Changes no
    /// number: only which Hessians this run computes.
    pub shard: Option<Shard>,
}

impl AnalyzeParams {
    /// Checks the settings that need no subject: the saddle ratio and the verdict's other
    /// thresholds ([`check_verdict_rule`]), the estimator's settings
    /// ([`SpectrumParams::validate`]), the batch size and the samples per class. [`analyze`]
    /// and [`crate::class_landscape`] call it first; a front end can call it before it
    /// loads anything.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the setting, [`Error::Settings`] for the estimator's.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |param, reason| Err(Error::Invalid { param, reason });
        if !(self.saddle.min_ratio.is_finite() && self.saddle.min_ratio >= 0.0) {
            return invalid(
                Param::SaddleRatio,
                format!("{} is negative or not finite", self.saddle.min_ratio),
            );
        }
        check_verdict_rule(&self.verdict)?;
        self.spectrum.validate().map_err(Error::Settings)?;
        if self.batch_size == 0 {
            return invalid(Param::BatchSize, "must be at least 1".into());
        }
        if self.samples_per_class == Some(0) {
            return invalid(Param::SamplesPerClass, "0: need at least 1".into());
        }
        Ok(())
    }
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
            verdict: VerdictRule::default(),
            param_filter: Vec::new(),
            batch_size: 256,
            dtype: DType::F32,
            hvp: HvpSettings::default(),
            shard: None,
        }
    }
}

/// What is analysed: a model and the split whose class samples define the Hessians.
pub struct Subject<'a> {
    /// The model (any dtype; converted to the analysis dtype).
    pub model: &'a Model,
    /// The split the samples come from (the long-tailed train subset, or the test split).
    pub split: &'a Split,
    /// The long-tailed training split, on which the model's health is measured.
    pub train_split: &'a Split,
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
    /// A shard estimated its Hessians (none if it has none); `merge` writes the report.
    ShardFinished {
        /// Which shard.
        shard: Shard,
        /// How many Hessians it holds.
        done: usize,
    },
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
        verdict: Some(params.verdict),
        param_filter: params.param_filter.clone(),
        tol: params.spectrum.tol,
        top_k: params.spectrum.top_k,
        basis: params.spectrum.slq.basis,
    }
}

/// Runs the class-wise analysis of `subject` into `out` (created), reusing finished
/// Hessians from an earlier run when `resume` is set and their settings match. With
/// `params.shard`, only that shard's Hessians, and `out` gets the shard's manifest
/// instead of the report.
pub fn analyze(
    subject: &Subject<'_>,
    params: &AnalyzeParams,
    out: &Path,
    resume: bool,
    observer: &dyn AnalysisObserver,
    stop: &AtomicBool,
) -> Result<AnalysisOutcome, Error> {
    let setup = HessianSetup::new(subject, params)?;
    let classes = subject.model.classes();
    let class_ids = params
        .class_ids
        .clone()
        .unwrap_or_else(|| (0..classes).collect());
    let (plan, skipped) = plan::plan(
        &setup,
        &subject.split_name,
        &class_ids,
        params.include_all,
        observer,
    )?;
    let dir = AnalysisDir::new(out);
    std::fs::create_dir_all(dir.parts()).map_err(|e| Error::io(out, e))?;
    let health = model_health(&setup, subject.train_split, &params.verdict)?;
    if health.status != saddlescope_results::HealthStatus::Trained {
        observer.notice(&format!(
            "the model is {}: {}; every verdict is {}",
            health.status.as_str(),
            health.reason,
            VerdictKind::Undetermined
        ));
    }
    let header = AnalysisReport {
        checkpoint: subject.checkpoint.clone(),
        dataset: subject.dataset.clone(),
        split: subject.split_name.clone(),
        params: describe(params),
        classes: Vec::new(),
        skipped,
        all: None,
        trace_identity: None,
        health: Some(health.clone()),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let key = PartKey::of(&header);
    let positions = plan::positions(&plan, params.shard, &header, &dir, observer)?;
    let mut context = Context {
        subject,
        params,
        setup: &setup,
        dir: &dir,
        key: &key,
        resume,
        observer,
        health: &health,
    };
    let mut results = Vec::new();
    for i in positions {
        if stop.load(Ordering::SeqCst) {
            return Ok(AnalysisOutcome::Interrupted {
                done: results.len(),
            });
        }
        let class = plan.hessians[i].class;
        let batches = match class {
            Some(c) => setup.class_batches(c)?,
            None => {
                let mut batches = Vec::new();
                for c in 0..classes {
                    batches.extend(setup.class_batches(c)?);
                }
                batches
            }
        };
        results.push(context.estimate(class, batches)?);
    }
    if let Some(shard) = params.shard {
        return Ok(AnalysisOutcome::ShardFinished {
            shard,
            done: results.len(),
        });
    }
    let report = plan.report(header, results);
    write_report(&dir, &report)?;
    Ok(AnalysisOutcome::Finished(Box::new(report)))
}

/// Everything one Hessian estimate needs.
struct Context<'a, 's> {
    subject: &'a Subject<'s>,
    params: &'a AnalyzeParams,
    setup: &'a HessianSetup<'s>,
    dir: &'a AnalysisDir,
    key: &'a PartKey,
    resume: bool,
    observer: &'a dyn AnalysisObserver,
    health: &'a ModelHealth,
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
        let path = self.dir.part(class);
        if self.resume && path.exists() {
            let stored = read_part(&path)?;
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
        let assessment = assess(
            &op,
            &estimate,
            &name,
            self.health,
            &self.params.saddle,
            &self.params.verdict,
        )?;
        let result = self.record(class, name, samples, estimate, assessment);
        let stored = HessianPart {
            key: self.key.clone(),
            result,
        };
        write_part(&path, &stored)?;
        self.observer.hessian_done(&stored.result, false);
        Ok(stored.result)
    }

    /// The spectral settings, with the Ritz vectors the verdict needs; a Lanczos run never
    /// takes more steps than the dimension (the estimators cap m at n themselves), which the
    /// user is told about.
    fn clamped(&self, dim: usize) -> SpectrumParams {
        let spectrum = SpectrumParams {
            ritz_vectors: true,
            ..self.params.spectrum.clone()
        };
        if spectrum.slq.steps > dim {
            self.observer.notice(&format!(
                "{} Lanczos steps exceed the {dim} parameters of the Hessian block; each run stops after {dim} steps",
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
        assessment: Assessment,
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
            saddle: assessment.verdict == VerdictKind::Saddle,
            verdict: assessment.verdict,
            verdict_reason: assessment.reason,
            first_order: Some(assessment.first_order),
            estimate,
        }
    }
}
