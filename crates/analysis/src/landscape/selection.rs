//! Which classes `analyze --landscape` walks: those with significant negative curvature, and
//! the sharpest head class for contrast.

use saddlescope_results::{AnalysisReport, Group, VerdictKind};

/// The classes `analyze --landscape` draws: every class with significant negative curvature
/// (verdict `saddle`, or `not_stationary`, whose figure shows the gradient dominating) and,
/// for contrast, the head class with the largest λ_max; ascending, without repeats.
pub fn landscape_classes(report: &AnalysisReport) -> Vec<usize> {
    let head = report
        .classes
        .iter()
        .filter(|c| c.group == Some(Group::Head))
        .max_by(|a, b| a.estimate.lambda_max.total_cmp(&b.estimate.lambda_max))
        .and_then(|c| c.class);
    let mut classes: Vec<usize> = report
        .classes
        .iter()
        .filter(|c| matches!(c.verdict, VerdictKind::Saddle | VerdictKind::NotStationary))
        .filter_map(|c| c.class)
        .chain(head)
        .collect();
    classes.sort_unstable();
    classes.dedup();
    classes
}

#[cfg(test)]
mod tests {
    use saddlescope_spectral::TraceMethod;

    use super::*;
    use crate::tests::{finished, fixture, params, subject};

    #[test]
    fn landscape_classes_are_the_negatively_curved_and_the_sharpest_head() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let mut report = finished(
            crate::analyze(
                &subject(&f),
                &params(TraceMethod::Probes),
                dir.path(),
                false,
                &crate::Quiet,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .unwrap(),
        );
        let groups: Vec<_> = report.classes.iter().map(|c| c.group).collect();
        assert_eq!(groups[0], Some(Group::Head));
        let set = |report: &mut AnalysisReport, kinds: [VerdictKind; 3]| {
            for (c, kind) in report.classes.iter_mut().zip(kinds) {
                c.verdict = kind;
            }
        };
        use VerdictKind::*;
        set(&mut report, [MinimumLike, Undetermined, MinimumLike]);
        assert_eq!(landscape_classes(&report), [0]);
        set(&mut report, [MinimumLike, MinimumLike, Saddle]);
        assert_eq!(landscape_classes(&report), [0, 2]);
        set(&mut report, [Saddle, NotStationary, Saddle]);
        assert_eq!(landscape_classes(&report), [0, 1, 2]);
        report.classes[0].group = Some(Group::Medium);
        set(&mut report, [MinimumLike, Undetermined, NotStationary]);
        assert_eq!(landscape_classes(&report), [2]);
    }
}
