//! A study: the same experiment over recipes ("arms") × seeds, each cell a training run and
//! its class-wise analysis, aggregated over seeds into means with bootstrap intervals and
//! into conclusions on the paper's two claims (Rangwani et al. 2022): (a) tail classes sit
//! at more negative curvature than head classes, (b) SAM reduces the tail's negative
//! curvature and raises its accuracy.
//!
//! [`CellSummary`] keeps what the aggregation needs of one cell (built from its
//! [`AnalysisReport`] and its last [`EvalMetrics`]); [`aggregate`] turns the cells of a
//! [`StudyDesign`] into a [`StudyReport`] (`study.json`), a pure function of the cells, the
//! design and the [`BootstrapParams`]: where a cell was computed (which process, which
//! shard of a job array) cannot change a byte of it. [`write_study`] writes `study.json`,
//! `study.csv` (every interval, one per row) and `cells.csv` (every cell's per-class
//! numbers).

mod bootstrap;
mod claims;
mod csv;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    write_atomically, AnalysisReport, Error, EvalMetrics, Group, GroupAccuracy, HealthStatus,
    VerdictKind,
};
pub use bootstrap::{bootstrap_mean, BootstrapParams, Interval, MIN_VALUES_TO_CONCLUDE};
pub use claims::{claim_a, claim_b, Claim, Conclusion, Evidence};

/// One recipe of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyArm {
    /// Its name: the cells' directory names and the label in tables and figures.
    pub name: String,
    /// The recipe as `train` flags after `--preset`: the preset, the arm's own flags, and
    /// the study's `--model` and `--epochs` where the arm sets none
    /// (`mnist-lt-ce-drw-sam --sam 0.1 --model cnn`).
    pub recipe: String,
    /// Whether it trains with SAM (claim (b) compares an arm with SAM to one without).
    pub sam: bool,
}

/// The grid of a study: every arm is run with every seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyDesign {
    /// The arms; the first is the reference the others are compared with.
    pub arms: Vec<StudyArm>,
    /// The seeds (training and probe vectors), in order.
    pub seeds: Vec<u64>,
}

impl StudyDesign {
    /// Every cell (arm index, seed), arm by arm, seeds in order.
    pub fn cells(&self) -> Vec<(usize, u64)> {
        (0..self.arms.len())
            .flat_map(|arm| self.seeds.iter().map(move |&seed| (arm, seed)))
            .collect()
    }
}

/// One class of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellClass {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Head, medium or tail.
    pub group: Option<Group>,
    /// Training count of the class.
    pub train_count: usize,
    /// Smallest Hessian eigenvalue of the class loss.
    pub lambda_min: f64,
    /// Largest.
    pub lambda_max: f64,
    /// λ_min/λ_max (`null` when λ_max ≤ 0).
    pub ratio_min_max: Option<f64>,
    /// Hessian trace (Hutchinson).
    pub trace: f64,
    /// The analysis's verdict.
    pub verdict: VerdictKind,
    /// Test accuracy of the class after the last epoch.
    pub test_accuracy: Option<f64>,
}

/// What a study keeps of one cell: its test metrics and per-class spectra.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    /// The arm's name.
    pub arm: String,
    /// The seed.
    pub seed: u64,
    /// SHA-256 of the analysed checkpoint.
    pub checkpoint_sha256: String,
    /// The model's health as the analysis judged it (`null` for analyses without one).
    pub health: Option<HealthStatus>,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Test accuracy per group after the last epoch.
    pub group_accuracy: GroupAccuracy,
    /// Per class, in class order.
    pub classes: Vec<CellClass>,
}

impl CellSummary {
    /// The summary of the cell (`arm`, `seed`) from its analysis and its run's last test
    /// metrics.
    pub fn new(arm: &str, seed: u64, report: &AnalysisReport, test: &EvalMetrics) -> Self {
        Self {
            arm: arm.to_string(),
            seed,
            checkpoint_sha256: report.checkpoint.sha256.clone(),
            health: report.health.as_ref().map(|h| h.status),
            test_accuracy: test.accuracy,
            group_accuracy: test.group_accuracy,
            classes: report
                .classes
                .iter()
                .filter_map(|c| {
                    let class = c.class?;
                    Some(CellClass {
                        class,
                        name: c.name.clone(),
                        group: c.group,
                        train_count: c.train_count,
                        lambda_min: c.estimate.lambda_min,
                        lambda_max: c.estimate.lambda_max,
                        ratio_min_max: c.ratio_min_max,
                        trace: c.estimate.trace,
                        verdict: c.verdict,
                        test_accuracy: test.class_accuracy.get(class).copied(),
                    })
                })
                .collect(),
        }
    }

    /// The classes of `group`.
    fn group(&self, group: Group) -> impl Iterator<Item = &CellClass> {
        self.classes.iter().filter(move |c| c.group == Some(group))
    }

    /// The per-seed value of every [`GroupMetric`] for `group` (NaN where undefined).
    fn group_values(&self, group: Group) -> [f64; GroupMetric::ALL.len()] {
        let mean = |f: fn(&CellClass) -> Option<f64>| {
            let values: Vec<f64> = self.group(group).filter_map(f).collect();
            if values.is_empty() {
                f64::NAN
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            }
        };
        GroupMetric::ALL.map(|metric| match metric {
            GroupMetric::TestAccuracy => self.group_accuracy.of(group).unwrap_or(f64::NAN),
            GroupMetric::LambdaMin => mean(|c| Some(c.lambda_min)),
            GroupMetric::RatioMinMax => mean(|c| c.ratio_min_max),
            GroupMetric::Trace => mean(|c| Some(c.trace)),
            GroupMetric::SaddleCount => self
                .group(group)
                .filter(|c| c.verdict == VerdictKind::Saddle)
                .count() as f64,
        })
    }

    /// The per-seed value of every [`ClassMetric`] of class position `i`.
    fn class_values(&self, i: usize) -> [f64; ClassMetric::ALL.len()] {
        let c = &self.classes[i];
        ClassMetric::ALL.map(|metric| match metric {
            ClassMetric::TestAccuracy => c.test_accuracy.unwrap_or(f64::NAN),
            ClassMetric::LambdaMin => c.lambda_min,
            ClassMetric::RatioMinMax => c.ratio_min_max.unwrap_or(f64::NAN),
            ClassMetric::Trace => c.trace,
        })
    }
}

/// A quantity aggregated per head/medium/tail group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMetric {
    /// The group's test accuracy.
    TestAccuracy,
    /// Mean λ_min over the group's classes.
    LambdaMin,
    /// Mean λ_min/λ_max over the group's classes (those with λ_max > 0).
    RatioMinMax,
    /// Mean Hessian trace over the group's classes.
    Trace,
    /// Number of the group's classes with a saddle verdict.
    SaddleCount,
}

impl GroupMetric {
    /// Every group metric, in the order of [`GroupMetrics`]' fields.
    pub const ALL: [GroupMetric; 5] = [
        GroupMetric::TestAccuracy,
        GroupMetric::LambdaMin,
        GroupMetric::RatioMinMax,
        GroupMetric::Trace,
        GroupMetric::SaddleCount,
    ];

    /// The JSON key and CSV name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMetric::TestAccuracy => "test_accuracy",
            GroupMetric::LambdaMin => "lambda_min",
            GroupMetric::RatioMinMax => "ratio_min_max",
            GroupMetric::Trace => "trace",
            GroupMetric::SaddleCount => "saddle_count",
        }
    }
}

/// A quantity aggregated per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassMetric {
    /// The class's test accuracy.
    TestAccuracy,
    /// λ_min.
    LambdaMin,
    /// λ_min/λ_max.
    RatioMinMax,
    /// Hessian trace.
    Trace,
}

impl ClassMetric {
    /// Every class metric, in the order of [`ClassMetrics`]' fields.
    pub const ALL: [ClassMetric; 4] = [
        ClassMetric::TestAccuracy,
        ClassMetric::LambdaMin,
        ClassMetric::RatioMinMax,
        ClassMetric::Trace,
    ];

    /// The JSON key and CSV name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassMetric::TestAccuracy => "test_accuracy",
            ClassMetric::LambdaMin => "lambda_min",
            ClassMetric::RatioMinMax => "ratio_min_max",
            ClassMetric::Trace => "trace",
        }
    }
}

/// Mean and interval over seeds of each [`GroupMetric`] (`null` where no seed has a value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Test accuracy of the group.
    pub test_accuracy: Option<Interval>,
    /// Mean λ_min of its classes.
    pub lambda_min: Option<Interval>,
    /// Mean λ_min/λ_max of its classes.
    pub ratio_min_max: Option<Interval>,
    /// Mean trace of its classes.
    pub trace: Option<Interval>,
    /// Its classes with a saddle verdict.
    pub saddle_count: Option<Interval>,
}

impl GroupMetrics {
    fn from(intervals: [Option<Interval>; 5]) -> Self {
        let [test_accuracy, lambda_min, ratio_min_max, trace, saddle_count] = intervals;
        Self {
            test_accuracy,
            lambda_min,
            ratio_min_max,
            trace,
            saddle_count,
        }
    }

    /// The interval of `metric`.
    pub fn get(&self, metric: GroupMetric) -> Option<Interval> {
        match metric {
            GroupMetric::TestAccuracy => self.test_accuracy,
            GroupMetric::LambdaMin => self.lambda_min,
            GroupMetric::RatioMinMax => self.ratio_min_max,
            GroupMetric::Trace => self.trace,
            GroupMetric::SaddleCount => self.saddle_count,
        }
    }
}

/// Mean and interval over seeds of each [`ClassMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Test accuracy.
    pub test_accuracy: Option<Interval>,
    /// λ_min.
    pub lambda_min: Option<Interval>,
    /// λ_min/λ_max.
    pub ratio_min_max: Option<Interval>,
    /// Trace.
    pub trace: Option<Interval>,
}

impl ClassMetrics {
    fn from(intervals: [Option<Interval>; 4]) -> Self {
        let [test_accuracy, lambda_min, ratio_min_max, trace] = intervals;
        Self {
            test_accuracy,
            lambda_min,
            ratio_min_max,
            trace,
        }
    }

    /// The interval of `metric`.
    pub fn get(&self, metric: ClassMetric) -> Option<Interval> {
        match metric {
            ClassMetric::TestAccuracy => self.test_accuracy,
            ClassMetric::LambdaMin => self.lambda_min,
            ClassMetric::RatioMinMax => self.ratio_min_max,
            ClassMetric::Trace => self.trace,
        }
    }
}

/// One group's aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The group.
    pub group: Group,
    /// Its number of classes.
    pub classes: usize,
    /// The aggregates.
    pub metrics: GroupMetrics,
}

/// One class's aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Its group.
    pub group: Option<Group>,
    /// Its training count.
    pub train_count: usize,
    /// The aggregates.
    pub metrics: ClassMetrics,
}

/// One arm over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm's name.
    pub arm: String,
    /// Per group, head first (groups without classes left out).
    pub groups: Vec<GroupRow>,
    /// Per class, head → tail (by training count, then index).
    pub classes: Vec<ClassRow>,
}

/// Arm `b` against arm `a`: the mean over seeds of the paired difference `b − a` (same
/// seed), per group and per class, with intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The reference arm.
    pub a: String,
    /// The other arm.
    pub b: String,
    /// Per group.
    pub groups: Vec<GroupRow>,
    /// Per class, head → tail.
    pub classes: Vec<ClassRow>,
}

/// Everything a study found: the content of `study.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    /// The grid.
    pub design: StudyDesign,
    /// How intervals were computed.
    pub bootstrap: BootstrapParams,
    /// Each arm over its seeds, in the design's order.
    pub arms: Vec<ArmSummary>,
    /// Every arm after the first against the first.
    pub comparisons: Vec<Comparison>,
    /// The paper's claims, each with its criterion and conclusion.
    pub claims: Vec<Claim>,
    /// Every cell, arm by arm, seeds in order.
    pub cells: Vec<CellSummary>,
    /// Version of saddlescope that wrote the file.
    pub version: String,
}

/// Why a set of cells cannot be aggregated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StudyError {
    /// A cell of the design has no summary, or one the design does not have is given.
    #[error("{what} cell {arm}/seed-{seed}")]
    Cell {
        /// `missing`, `doubled` or `unexpected`.
        what: &'static str,
        /// Its arm.
        arm: String,
        /// Its seed.
        seed: u64,
    },
    /// Two cells disagree on the classes (their data differ).
    #[error("cells {first} and {other} have different classes (names, groups or train counts): they were not trained on the same data")]
    ClassesDiffer {
        /// The first cell.
        first: String,
        /// The other.
        other: String,
    },
    /// A study needs at least one arm and one seed.
    #[error("a study needs at least one arm and one seed")]
    Empty,
}

/// The cell's name, `ARM/seed-S`.
pub fn cell_name(arm: &str, seed: u64) -> String {
    format!("{arm}/seed-{seed}")
}

/// Aggregates the cells of `design` (in any order) into the study's report.
///
/// # Errors
/// [`StudyError`]: a cell missing, doubled or not in the design; cells on different classes.
pub fn aggregate(
    design: &StudyDesign,
    cells: Vec<CellSummary>,
    params: &BootstrapParams,
) -> Result<StudyReport, StudyError> {
    let cells = arrange(design, cells)?;
    let per_arm: Vec<&[CellSummary]> = cells.chunks(design.seeds.len()).collect();
    let order = head_to_tail(&cells[0]);
    let groups: Vec<Group> = Group::ALL
        .into_iter()
        .filter(|&g| cells[0].group(g).next().is_some())
        .collect();
    let summarize = |values: &dyn Fn(&CellSummary, &CellSummary) -> Vec<f64>,
                     arm: &[CellSummary],
                     reference: &[CellSummary],
                     width: usize|
     -> Vec<Option<Interval>> {
        let per_seed: Vec<Vec<f64>> = arm
            .iter()
            .zip(reference)
            .map(|(b, a)| values(b, a))
            .collect();
        (0..width)
            .map(|k| {
                let column: Vec<f64> = per_seed.iter().map(|v| v[k]).collect();
                bootstrap_mean(&column, params)
            })
            .collect()
    };
    let rows = |arm: &[CellSummary], reference: Option<&[CellSummary]>| {
        let base = reference.unwrap_or(arm);
        let paired = reference.is_some();
        let group_rows = groups
            .iter()
            .map(|&g| {
                let values = |b: &CellSummary, a: &CellSummary| {
                    let (vb, va) = (b.group_values(g), a.group_values(g));
                    (0..vb.len())
                        .map(|k| if paired { vb[k] - va[k] } else { vb[k] })
                        .collect()
                };
                let intervals = summarize(&values, arm, base, GroupMetric::ALL.len());
                GroupRow {
                    group: g,
                    classes: arm[0].group(g).count(),
                    metrics: GroupMetrics::from(intervals.try_into().expect("five metrics")),
                }
            })
            .collect();
        let class_rows = order
            .iter()
            .map(|&i| {
                let values = |b: &CellSummary, a: &CellSummary| {
                    let (vb, va) = (b.class_values(i), a.class_values(i));
                    (0..vb.len())
                        .map(|k| if paired { vb[k] - va[k] } else { vb[k] })
                        .collect()
                };
                let intervals = summarize(&values, arm, base, ClassMetric::ALL.len());
                let c = &arm[0].classes[i];
                ClassRow {
                    class: c.class,
                    name: c.name.clone(),
                    group: c.group,
                    train_count: c.train_count,
                    metrics: ClassMetrics::from(intervals.try_into().expect("four metrics")),
                }
            })
            .collect();
        (group_rows, class_rows)
    };
    let arms = design
        .arms
        .iter()
        .zip(&per_arm)
        .map(|(arm, cells)| {
            let (groups, classes) = rows(cells, None);
            ArmSummary {
                arm: arm.name.clone(),
                groups,
                classes,
            }
        })
        .collect();
    let comparisons = design
        .arms
        .iter()
        .zip(&per_arm)
        .skip(1)
        .map(|(arm, cells)| {
            let (groups, classes) = rows(cells, Some(per_arm[0]));
            Comparison {
                a: design.arms[0].name.clone(),
                b: arm.name.clone(),
                groups,
                classes,
            }
        })
        .collect();
    let claims = claims::evaluate(design, &per_arm, params);
    Ok(StudyReport {
        design: design.clone(),
        bootstrap: *params,
        arms,
        comparisons,
        claims,
        cells,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// The cells in the design's order, each present once, all on the same classes.
fn arrange(design: &StudyDesign, cells: Vec<CellSummary>) -> Result<Vec<CellSummary>, StudyError> {
    if design.arms.is_empty() || design.seeds.is_empty() {
        return Err(StudyError::Empty);
    }
    let mut slots: Vec<Option<CellSummary>> = vec![None; design.arms.len() * design.seeds.len()];
    for cell in cells {
        let arm = design.arms.iter().position(|a| a.name == cell.arm);
        let seed = design.seeds.iter().position(|&s| s == cell.seed);
        let (Some(arm), Some(seed)) = (arm, seed) else {
            return Err(StudyError::Cell {
                what: "unexpected",
                arm: cell.arm,
                seed: cell.seed,
            });
        };
        let slot = &mut slots[arm * design.seeds.len() + seed];
        if slot.is_some() {
            return Err(StudyError::Cell {
                what: "doubled",
                arm: cell.arm,
                seed: cell.seed,
            });
        }
        *slot = Some(cell);
    }
    let cells = slots
        .into_iter()
        .zip(design.cells())
        .map(|(cell, (arm, seed))| {
            cell.ok_or_else(|| StudyError::Cell {
                what: "missing",
                arm: design.arms[arm].name.clone(),
                seed,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let shape = |c: &CellSummary| -> Vec<(usize, String, Option<Group>, usize)> {
        c.classes
            .iter()
            .map(|k| (k.class, k.name.clone(), k.group, k.train_count))
            .collect()
    };
    if let Some(other) = cells.iter().find(|c| shape(c) != shape(&cells[0])) {
        return Err(StudyError::ClassesDiffer {
            first: cell_name(&cells[0].arm, cells[0].seed),
            other: cell_name(&other.arm, other.seed),
        });
    }
    Ok(cells)
}

/// Class positions head → tail: by decreasing train count, then by index.
fn head_to_tail(cell: &CellSummary) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cell.classes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(cell.classes[i].train_count), i));
    order
}

/// Writes `study.json`, `study.csv` and `cells.csv` into `dir`, each atomically.
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn write_study(dir: &Path, report: &StudyReport) -> Result<(), Error> {
    let path = dir.join("study.json");
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| Error::encode(&path, e))?;
    json.push(b'\n');
    write_atomically(&path, json).map_err(|e| Error::io(&path, e))?;
    for (name, text) in [
        ("study.csv", csv::intervals(report)),
        ("cells.csv", csv::cells(report)),
    ] {
        let path = dir.join(name);
        write_atomically(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Reads `study.json`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] naming the file.
pub fn read_study(path: &Path) -> Result<StudyReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt(path, e))
}

#[cfg(test)]
mod tests;
