//! The verdicts in words, shared by `analyze`'s terminal summary and the reports: the
//! model's health, the count of each verdict and every class's reason.

use saddlescope_results::{AnalysisReport, ClassSpectrum, ModelHealth, VerdictKind};

/// `class 9 (tail)`, or `all classes`.
pub fn class_name(c: &ClassSpectrum) -> String {
    match (c.class, c.group) {
        (Some(_), Some(group)) => format!("class {} ({group})", c.name),
        (Some(_), None) => format!("class {}", c.name),
        (None, _) => "all classes".into(),
    }
}

/// One sentence on the model's fit to its training split, e.g. `model health on the training
/// split (1641 samples): trained: balanced train accuracy …; full-data ‖∇L‖ = 1.2e-2`.
pub fn health_sentence(health: &ModelHealth) -> String {
    format!(
        "model health on the training split ({} samples): {}: {}; full-data ‖∇L‖ = {:.3e}",
        health.samples,
        health.status.as_str(),
        health.reason,
        health.grad_norm
    )
}

/// How many classes got each verdict, e.g. `2 saddle, 6 not stationary, 2 minimum-like of
/// 10 classes` (verdicts no class got are left out).
pub fn verdict_counts(classes: &[ClassSpectrum]) -> String {
    let counts: Vec<String> = VerdictKind::ALL
        .iter()
        .filter_map(|&kind| {
            let n = classes.iter().filter(|c| c.verdict == kind).count();
            (n > 0).then(|| format!("{n} {}", kind.label()))
        })
        .collect();
    format!("{} of {} classes", counts.join(", "), classes.len())
}

/// `analyze`'s summary after the table: the health, the counts and each class's verdict
/// with its reason, one line each (one line for all when they share verdict and reason, as
/// when the model is untrained).
pub fn verdict_lines(report: &AnalysisReport) -> String {
    let mut out = String::new();
    if let Some(health) = &report.health {
        out.push_str(&health_sentence(health));
        out.push('\n');
    }
    out.push_str(&format!("verdicts: {}\n", verdict_counts(&report.classes)));
    let all: Vec<&ClassSpectrum> = report.classes.iter().chain(&report.all).collect();
    let shared = all.windows(2).all(|pair| {
        (pair[0].verdict, &pair[0].verdict_reason) == (pair[1].verdict, &pair[1].verdict_reason)
    });
    match all.first() {
        Some(first) if shared && all.len() > 1 => out.push_str(&format!(
            "  every class: {}: {}\n",
            first.verdict.label(),
            first.verdict_reason
        )),
        _ => {
            for c in all {
                out.push_str(&format!(
                    "  {}: {}: {}\n",
                    class_name(c),
                    c.verdict.label(),
                    c.verdict_reason
                ));
            }
        }
    }
    out
}
