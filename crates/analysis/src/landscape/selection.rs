//! Which classes `analyze --landscape` walks: the saddles, and the sharpest head class for
//! contrast.

use saddlescope_results::{AnalysisReport, Group};

/// The classes `analyze --landscape` draws: every class flagged as a saddle and, for
/// contrast, the head class with the largest λ_max; ascending, without repeats.
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
        .filter(|c| c.saddle)
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
    fn landscape_classes_are_the_saddles_and_the_sharpest_head() {
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
        report.classes.iter_mut().for_each(|c| c.saddle = false);
        assert_eq!(landscape_classes(&report), [0]);
        report.classes[2].saddle = true;
        assert_eq!(landscape_classes(&report), [0, 2]);
        report.classes[0].saddle = true;
        assert_eq!(landscape_classes(&report), [0, 2]);
        report.classes[0].group = Some(Group::Medium);
        report.classes[0].saddle = false;
        assert_eq!(landscape_classes(&report), [2]);
    }
}
