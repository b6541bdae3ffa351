//! The Hessians of a class-wise analysis, fixed before any is estimated: which ones, how
//! many samples each is over (its cost) and each class's loss weight (for the trace
//! identity). A whole run estimates every planned Hessian; a shard the ones
//! [`partition`](crate::partition) gives it by sample count. Either way the report is
//! assembled by [`AnalysisPlan::report`], so `merge` writes the bytes an unsharded run does.

use serde::{Deserialize, Serialize};

use crate::{AnalysisReport, ClassSpectrum, Shard, TraceIdentity};

/// One Hessian of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedHessian {
    /// The class, or `None` for the all-classes Hessian.
    pub class: Option<usize>,
    /// Samples whose mean loss it is of. Every Hessian takes about the same number of HVPs,
    /// and an HVP's cost grows with its samples: this is the Hessian's cost.
    pub samples: usize,
    /// The summed loss weights of those samples (the count under plain cross-entropy): the
    /// all-classes loss is Σ_c π_c L_c with π_c = weight_c / Σ weights.
    pub weight: f64,
}

impl PlannedHessian {
    /// `class 3` or `all`, as messages name it.
    pub fn label(&self) -> String {
        self.class.map_or("all".into(), |c| format!("class {c}"))
    }
}

/// Every Hessian of an analysis, in report order (the classes as asked for, then `all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisPlan {
    /// The Hessians.
    pub hessians: Vec<PlannedHessian>,
    /// Whether the report holds the trace identity: every class of the checkpoint and `all`
    /// are planned.
    pub trace_identity: bool,
}

impl AnalysisPlan {
    /// Each Hessian's cost for [`partition`](crate::partition): its sample count.
    pub fn costs(&self) -> Vec<u64> {
        self.hessians.iter().map(|h| h.samples as u64).collect()
    }

    /// The positions (into [`hessians`](Self::hessians)) of the Hessians `shard` estimates.
    pub fn shard(&self, shard: Shard) -> Vec<usize> {
        shard.items(&self.costs())
    }

    /// `class 0, class 4, all` for the Hessians at `positions`, or `no Hessians`.
    pub fn labels(&self, positions: &[usize]) -> String {
        if positions.is_empty() {
            return "no Hessians".into();
        }
        let labels: Vec<String> = positions
            .iter()
            .map(|&i| self.hessians[i].label())
            .collect();
        labels.join(", ")
    }

    /// The report of the finished plan: `header`'s per-analysis fields (its `classes`, `all`
    /// and `trace_identity` are replaced) with `results`, one per planned Hessian in plan
    /// order, and the trace identity tr H_all = Σ_c π_c tr H_c when the plan allows it.
    pub fn report(&self, header: AnalysisReport, results: Vec<ClassSpectrum>) -> AnalysisReport {
        let mut classes = Vec::new();
        let mut weights = Vec::new();
        let mut all = None;
        for (planned, result) in self.hessians.iter().zip(results) {
            match planned.class {
                Some(_) => {
                    weights.push(planned.weight);
                    classes.push(result);
                }
                None => all = Some(result),
            }
        }
        let trace_identity = match &all {
            Some(all) if self.trace_identity => Some(trace_identity(all, &classes, &weights)),
            _ => None,
        };
        AnalysisReport {
            classes,
            all,
            trace_identity,
            ..header
        }
    }
}

/// tr H_all against Σ_c π_c tr H_c, π_c = weight_c / Σ weights.
fn trace_identity(
    all: &ClassSpectrum,
    classes: &[ClassSpectrum],
    weights: &[f64],
) -> TraceIdentity {
    let total: f64 = weights.iter().sum();
    let weighted_sum: f64 = classes
        .iter()
        .zip(weights)
        .map(|(r, w)| w / total * r.estimate.trace)
        .sum();
    let scale = all.estimate.trace.abs().max(f64::MIN_POSITIVE);
    TraceIdentity {
        all: all.estimate.trace,
        weighted_sum,
        relative_residual: (all.estimate.trace - weighted_sum).abs() / scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECTRUM: &str = include_str!("../tests/fixtures/spectrum.json");

    fn planned(class: Option<usize>, samples: usize) -> PlannedHessian {
        PlannedHessian {
            class,
            samples,
            weight: samples as f64,
        }
    }

    /// The fixture's classes (40, 12 and 4 samples) and `all`, as `analyze` plans them.
    fn fixture_plan() -> AnalysisPlan {
        AnalysisPlan {
            hessians: vec![
                planned(Some(0), 40),
                planned(Some(1), 12),
                planned(Some(2), 4),
                planned(None, 56),
            ],
            trace_identity: true,
        }
    }

    /// Taking a written report apart into its header and results and assembling it again
    /// gives back the same bytes, trace identity included.
    #[test]
    fn a_report_reassembles_byte_for_byte() {
        let report: AnalysisReport = serde_json::from_str(SPECTRUM).unwrap();
        let plan = fixture_plan();
        let results: Vec<ClassSpectrum> =
            report.classes.iter().chain(&report.all).cloned().collect();
        let header = AnalysisReport {
            classes: Vec::new(),
            all: None,
            trace_identity: None,
            ..report.clone()
        };
        let again = plan.report(header.clone(), results.clone());
        assert_eq!(
            serde_json::to_string_pretty(&again).unwrap(),
            serde_json::to_string_pretty(&report).unwrap()
        );
        let no_identity = AnalysisPlan {
            trace_identity: false,
            ..plan
        };
        assert!(no_identity.report(header, results).trace_identity.is_none());
    }

    #[test]
    fn costs_are_sample_counts_and_labels_name_the_hessians() {
        let plan = fixture_plan();
        assert_eq!(plan.costs(), [40, 12, 4, 56]);
        let shard = |i| plan.shard(Shard::new(i, 2).unwrap());
        assert_eq!((shard(1), shard(2)), (vec![3], vec![0, 1, 2]));
        assert_eq!(plan.labels(&shard(2)), "class 0, class 1, class 2");
        assert_eq!(plan.labels(&shard(1)), "all");
        assert_eq!(plan.labels(&[]), "no Hessians");
    }
}
