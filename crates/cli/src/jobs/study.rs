//! A study, ready to go: every cell (arm, seed) trained and analysed in a directory of its
//! own (`OUT/cells/ARM/seed-S/`), then aggregated into `study.json`, `study.csv`,
//! `cells.csv`, figures and a report. A finished cell leaves `cell.json` (what the study
//! keeps of it), so the same command again skips it; an interrupted cell continues, since
//! its run and analysis resume by themselves. With a shard, only the shard's cells run and
//! `study-shard.json` records them; `merge` aggregates the shards ([`merge_study`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use saddlescope_analysis::{describe, AnalyzeParams};
use saddlescope_results::{
    aggregate, check_coverage, read_log, read_report, write_atomically, write_study, AnalysisDir,
    BootstrapParams, CellSummary, Shard, StudyDesign, StudyReport,
};
use saddlescope_train::TrainConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checkpoint_args::CheckpointSource;
use crate::error::usage;
use crate::jobs::analyze::{analyze, AnalyzeJob};
use crate::jobs::train::{train, TrainJob, TrainStart};
use crate::out_dir::{outputs, OutDir, Outputs, Prior};
use crate::report::{command_line, load_inputs, write_study_report, Inputs, ReportOptions};

/// What a study is run as.
#[derive(Debug)]
pub enum StudyKind {
    /// `saddlescope study`.
    Study,
    /// `saddlescope demo`: its own record and title, and the report also shows the first
    /// seed's runs and analyses in full.
    Demo {
        /// The report's title.
        title: String,
        /// The demo's own settings besides the study's (`--quick`).
        settings: Value,
    },
}

/// A study, ready to go.
#[derive(Debug)]
pub struct StudyJob {
    /// The arms and seeds.
    pub design: StudyDesign,
    /// Each arm's recipe, validated; each cell sets its seed.
    pub recipes: Vec<TrainConfig>,
    /// The analysis of every cell, validated; each cell sets its probe seed.
    pub analysis: AnalyzeParams,
    /// The output directory.
    pub out: PathBuf,
    /// Only this shard's cells.
    pub shard: Option<Shard>,
    /// Where tensors live.
    pub device: Device,
    /// No progress output.
    pub quiet: bool,
    /// Replace a study of other settings in `out`.
    pub force: bool,
    /// Study or demo.
    pub kind: StudyKind,
}

/// The file a finished cell leaves in its directory.
const CELL_FILE: &str = "cell.json";
/// The file a shard of a study leaves in its output directory.
pub const SHARD_FILE: &str = "study-shard.json";

/// What a shard of a study records: enough for `merge` to check that the shards belong
/// together and to aggregate them as one run would.
#[derive(Debug, Serialize, Deserialize)]
struct StudyShardManifest {
    /// Which shard.
    shard: Shard,
    /// The study's settings (as recorded for an unsharded run).
    settings: Value,
    /// The grid.
    design: StudyDesign,
    /// The report's title.
    title: String,
    /// The cells this shard ran, `ARM/seed-S`.
    cells: Vec<String>,
}

impl StudyJob {
    /// The report's title.
    fn title(&self) -> String {
        match &self.kind {
            StudyKind::Demo { title, .. } => title.clone(),
            StudyKind::Study => {
                let arms: Vec<&str> = self.design.arms.iter().map(|a| a.name.as_str()).collect();
                format!(
                    "saddlescope study: {} over {} seeds",
                    arms.join(" vs "),
                    self.design.seeds.len()
                )
            }
        }
    }

    /// What identifies the study in its directory's record (without the shard).
    fn settings(&self) -> Value {
        // Recipes by arm name, so that a refusal names the arm and the field that differ.
        let recipes: serde_json::Map<String, Value> = self
            .design
            .arms
            .iter()
            .zip(&self.recipes)
            .map(|(arm, recipe)| (arm.name.clone(), json!(recipe)))
            .collect();
        let mut settings = json!({
            "design": self.design,
            "recipes": recipes,
            "analysis": describe(&self.analysis),
            "all_classes_hessian": self.analysis.include_all,
            "bootstrap": BootstrapParams::default(),
        });
        if let StudyKind::Demo { settings: demo, .. } = &self.kind {
            settings["demo"] = demo.clone();
        }
        settings
    }

    fn outputs(&self) -> &'static Outputs {
        match self.kind {
            StudyKind::Study => &outputs::STUDY,
            StudyKind::Demo { .. } => &outputs::DEMO,
        }
    }

    fn say(&self, message: String) {
        if !self.quiet {
            let who = match self.kind {
                StudyKind::Study => "study",
                StudyKind::Demo { .. } => "demo",
            };
            eprintln!("{who}: {message}");
        }
    }
}

/// `OUT/cells/ARM/seed-S`.
fn cell_dir(out: &Path, arm: &str, seed: u64) -> PathBuf {
    out.join("cells").join(arm).join(format!("seed-{seed}"))
}

/// Runs `job`: exit 0 when every cell (of its shard) is done and, unsharded, the study is
/// written; 130 when interrupted (finished cells are kept; the same command continues).
///
/// # Errors
/// Usage errors (`--out` holding another study); the directory in use by another process;
/// training, analysis and file errors of a cell, naming it.
pub fn study(job: &StudyJob) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut out = OutDir::lock(&job.out, job.force, job.quiet)?;
    let mut settings = job.settings();
    settings["shard"] = json!(job.shard.map(|s| s.to_string()));
    if out.claim(job.outputs(), &settings, job.force)? == Prior::Same {
        job.say(format!("continuing in {}", job.out.display()));
    }
    let cells = job.design.cells();
    let mine: Vec<usize> = match job.shard {
        Some(shard) => shard.items(&vec![1; cells.len()]),
        None => (0..cells.len()).collect(),
    };
    let mut summaries = Vec::new();
    for (k, &i) in mine.iter().enumerate() {
        let (arm, seed) = cells[i];
        let what = format!(
            "cell {} of {} ({}/seed-{seed})",
            k + 1,
            mine.len(),
            job.design.arms[arm].name
        );
        match run_cell(job, arm, seed, &what)? {
            Ok(summary) => summaries.push(summary),
            Err(code) => return Ok(code),
        }
    }
    if let Some(shard) = job.shard {
        let manifest = StudyShardManifest {
            shard,
            settings: job.settings(),
            design: job.design.clone(),
            title: job.title(),
            cells: summaries
                .iter()
                .map(|s| saddlescope_results::cell_name(&s.arm, s.seed))
                .collect(),
        };
        let path = job.out.join(SHARD_FILE);
        write_atomically(&path, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| path.display().to_string())?;
        job.say(format!(
            "shard {shard}: {} cells in {}; once all {} shards are done, `saddlescope merge` aggregates them",
            summaries.len(),
            job.out.display(),
            shard.count()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let report = aggregate(&job.design, summaries, &BootstrapParams::default())
        .context("aggregating the cells")?;
    let details = match &job.kind {
        StudyKind::Demo { .. } => first_seed_inputs(job)?,
        StudyKind::Study => Inputs::default(),
    };
    write_results(&job.out, &report, &job.title(), &details)?;
    job.say(format!(
        "{} ({:.0} s in all)",
        job.out.join("report.html").display(),
        started.elapsed().as_secs_f64()
    ));
    for claim in &report.claims {
        job.say(format!("claim ({}): {}", claim.id, claim.summary));
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains and analyses one cell, or reads it back when it is finished: its summary, or
/// the exit status that stopped it.
fn run_cell(
    job: &StudyJob,
    arm: usize,
    seed: u64,
    what: &str,
) -> anyhow::Result<Result<CellSummary, ExitCode>> {
    let name = &job.design.arms[arm].name;
    let dir = cell_dir(&job.out, name, seed);
    let summary_path = dir.join(CELL_FILE);
    if summary_path.exists() {
        job.say(format!("{what}: finished before, reused"));
        return read_cell(&summary_path).map(Ok);
    }
    let mut config = job.recipes[arm].clone();
    config.seed = seed;
    let (run, analysis) = (dir.join("run"), dir.join("analysis"));
    job.say(format!(
        "{what}: training ({} epochs) into {}",
        config.epochs,
        run.display()
    ));
    let code = train(&TrainJob {
        start: TrainStart::Fresh {
            config: Box::new(config),
            out: run.clone(),
        },
        device: job.device.clone(),
        quiet: job.quiet,
        force: false,
    })
    .with_context(|| format!("{what}: training"))?;
    if code != ExitCode::SUCCESS {
        return Ok(Err(code));
    }
    job.say(format!(
        "{what}: class-wise Hessians into {}",
        analysis.display()
    ));
    let mut params = job.analysis.clone();
    params.spectrum.slq.seed = seed;
    let mut source = CheckpointSource::ours(run.join("last.safetensors"));
    source.device = job.device.clone();
    let code = analyze(&AnalyzeJob {
        source,
        params,
        out: analysis.clone(),
        landscape: false,
        quiet: job.quiet,
        label: Some(format!("{name}, seed {seed} ({})", analysis.display())),
        force: false,
    })
    .with_context(|| format!("{what}: analysis"))?;
    if code != ExitCode::SUCCESS {
        return Ok(Err(code));
    }
    let report = read_report(&AnalysisDir::new(&analysis).spectrum())?;
    let log_path = run.join("log.jsonl");
    let log = read_log(&log_path)?;
    let last = log
        .last()
        .with_context(|| format!("{}: no epoch recorded", log_path.display()))?;
    let summary = CellSummary::new(name, seed, &report, &last.test);
    write_atomically(&summary_path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| summary_path.display().to_string())?;
    Ok(Ok(summary))
}

/// A finished cell's `cell.json`.
fn read_cell(path: &Path) -> anyhow::Result<CellSummary> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a cell summary", path.display()))
}

/// The demo's details: the first seed's analyses and runs, labelled by arm.
fn first_seed_inputs(job: &StudyJob) -> anyhow::Result<Inputs> {
    let seed = job.design.seeds[0];
    let mut dirs = Vec::new();
    let mut labels = Vec::new();
    for arm in &job.design.arms {
        let dir = cell_dir(&job.out, &arm.name, seed);
        dirs.extend([dir.join("analysis"), dir.join("run")]);
        labels.extend([arm.name.clone(), arm.name.clone()]);
    }
    load_inputs(&dirs, &labels)
}

/// Writes `study.json`, `study.csv`, `cells.csv`, the figures and the report into `out`.
fn write_results(
    out: &Path,
    report: &StudyReport,
    title: &str,
    details: &Inputs,
) -> anyhow::Result<()> {
    write_study(out, report)?;
    let options = ReportOptions {
        title: title.to_string(),
        xscale: saddlescope_plot::XScale::Symlog,
        command_line: command_line(),
    };
    write_study_report(report, details, out, &options)?;
    Ok(())
}

/// `saddlescope merge` of a study's shards (`study --shard I/N`, each with its
/// `study-shard.json`): checks that they are one study split once and completely, then
/// aggregates their cells into `out` as an unsharded run would (`study.json` byte for
/// byte).
///
/// # Errors
/// Usage errors naming the shard or cell that is missing, doubled, unfinished or of another
/// study; the directory in use; file errors.
pub fn merge_study(
    dirs: &[PathBuf],
    out: &Path,
    force: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let mut shards = Vec::new();
    for dir in dirs {
        let path = dir.join(SHARD_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a shard of a study (run `saddlescope study --shard I/N --out {}`)",
                path.display(),
                dir.display()
            )
        })?;
        let manifest: StudyShardManifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a study shard manifest", path.display()))?;
        shards.push((dir.clone(), manifest));
    }
    let (first_dir, first) = &shards[0];
    if let Some((dir, other)) = shards.iter().find(|(_, m)| m.settings != first.settings) {
        return Err(usage(format!(
            "shards of different studies: shard {} ({}) and shard {} ({}) differ in their settings",
            first.shard,
            first_dir.display(),
            other.shard,
            dir.display()
        )));
    }
    check_coverage(shards.iter().map(|(d, m)| (m.shard, d.clone())).collect())
        .map_err(|e| usage(e.to_string()))?;
    let mut summaries = Vec::new();
    for (dir, manifest) in &shards {
        for cell in &manifest.cells {
            let path = dir.join("cells").join(cell).join(CELL_FILE);
            if !path.exists() {
                return Err(usage(format!(
                    "shard {} ({}) is incomplete: no result for cell {cell}; rerun it with the same command",
                    manifest.shard,
                    dir.display()
                )));
            }
            summaries.push(read_cell(&path)?);
        }
    }
    let report = aggregate(&first.design, summaries, &BootstrapParams::default())
        .map_err(|e| usage(format!("merging {} shards: {e}", shards.len())))?;
    let mut lock = OutDir::lock(out, force, quiet)?;
    let mut settings = first.settings.clone();
    settings["merged_shards"] = json!(shards.len());
    lock.claim(&outputs::STUDY, &settings, force)?;
    write_results(out, &report, &first.title, &Inputs::default())?;
    if !quiet {
        eprintln!(
            "merged {} shards into {}",
            shards.len(),
            out.join("study.json").display()
        );
        for claim in &report.claims {
            eprintln!("claim ({}): {}", claim.id, claim.summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}
