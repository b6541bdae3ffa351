//! The report's words and tables: verdicts, per-class and per-group tables, comparisons,
//! run summaries and the reproducibility facts, from the results alone (no drawing, no
//! files).

use saddlescope_results::{AnalysisReport, ClassSpectrum, Group, VerdictKind};
use saddlescope_spectral::BasisPrecision;
use saddlescope_train::LrSchedule;

use super::doc::Block;
use super::inputs::{Named, Run};
use crate::bounds;
use crate::verdict_text::{class_name, health_sentence, verdict_counts};

/// `head`, `medium`, `tail`, or `-` without a group.
pub(super) fn group_name(group: Option<Group>) -> String {
    group.map_or("-".into(), |g| g.to_string())
}

/// Three significant decimals in scientific notation.
pub(super) fn sci(v: f64) -> String {
    format!("{v:.3e}")
}

/// A fraction as a percentage with one decimal, or `-`.
pub(super) fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

/// Per-class test accuracy stored in an analysis's checkpoint metadata (our checkpoints).
fn class_accuracy(report: &AnalysisReport, class: usize) -> Option<f64> {
    report
        .checkpoint
        .metadata
        .test()?
        .class_accuracy
        .get(class)
        .copied()
}

/// Group accuracy stored in an analysis's checkpoint metadata.
fn group_accuracy(report: &AnalysisReport, group: Group) -> Option<f64> {
    report.checkpoint.metadata.test()?.group_accuracy.of(group)
}

/// Mean of `f` over the classes of `group`.
fn group_mean(
    report: &AnalysisReport,
    group: Group,
    f: impl Fn(&ClassSpectrum) -> f64,
) -> Option<f64> {
    let values: Vec<f64> = report
        .classes
        .iter()
        .filter(|c| c.group == Some(group))
        .map(f)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// One sentence per analysis: how many classes got each verdict, which ones are saddles and
/// which have significant negative curvature but are not stationary, and the model's health.
pub(super) fn verdict_sentence(a: &Named<AnalysisReport>) -> String {
    let mut sentence = format!("**{}**: {}", a.label, verdict_counts(&a.value.classes));
    for kind in [VerdictKind::Saddle, VerdictKind::NotStationary] {
        let list: Vec<String> = a
            .value
            .classes
            .iter()
            .filter(|c| c.verdict == kind)
            .map(|c| format!("{} ({})", c.name, group_name(c.group)))
            .collect();
        if !list.is_empty() {
            sentence.push_str(&format!("; {}: {}", kind.label(), list.join(", ")));
        }
    }
    sentence.push('.');
    if let Some(health) = &a.value.health {
        sentence.push_str(&format!(" The {}.", health_sentence(health)));
    }
    sentence
}

/// What the verdicts mean, once per report.
pub(super) fn verdict_rule() -> Block {
    Block::Paragraph(
        "A class is a **saddle** when its Hessian has significant negative curvature (λ_min < 0 beyond its residual bound and |λ_min|/λ_max at least the saddle ratio) that outweighs its gradient: at the radius r of its landscape along u_min, the curvature term ½|λ_min|·r² is at least the gradient term ‖g‖·r divided by the gradient ratio. With the same curvature but a larger gradient the class is **not stationary**: its loss falls along −g faster than along u_min, and a negative eigenvalue away from a stationary point is no saddle. Without significant negative curvature it is **minimum-like**; every verdict is **undetermined** when the model is untrained or diverged on its training split.".into(),
    )
}

/// Every class (and `all`) of an analysis: spectrum, verdict and test accuracy.
pub(super) fn class_table(report: &AnalysisReport) -> Block {
    let header = [
        "class",
        "name",
        "group",
        "train n",
        "samples",
        "λ_min",
        "bound",
        "λ_max",
        "bound",
        "λ_min/λ_max",
        "trace",
        "± se",
        "neg. mass",
        "test acc",
        "verdict",
    ];
    let rows = report
        .classes
        .iter()
        .chain(&report.all)
        .map(|c| {
            let e = &c.estimate;
            vec![
                c.class.map_or("all".into(), |i| i.to_string()),
                c.name.clone(),
                group_name(c.group),
                c.train_count.to_string(),
                c.samples.to_string(),
                sci(e.lambda_min),
                bounds::marked(e, e.lambda_min_bound),
                sci(e.lambda_max),
                bounds::marked(e, e.lambda_max_bound),
                c.ratio_min_max.map_or("-".into(), |r| format!("{r:.4}")),
                sci(e.trace),
                e.trace_stderr.map_or("-".into(), sci),
                format!("{:.3}", e.negative_mass),
                percent(c.class.and_then(|i| class_accuracy(report, i))),
                match c.verdict {
                    VerdictKind::Saddle => "**saddle**".into(),
                    other => other.label().into(),
                },
            ]
        })
        .collect();
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

/// Every class's first-order context (loss, accuracy and gradient on the analysed samples,
/// the curvature along the gradient, the slope along u_min, and what the gradient, the
/// slope and the negative curvature each change the quadratic model by at radius r) and its
/// verdict with the reason. Results written before verdicts existed show `-`.
pub(super) fn first_order_table(report: &AnalysisReport) -> Block {
    let header = [
        "class",
        "loss",
        "accuracy",
        "‖g‖",
        "κ_g",
        "|g·u_min|",
        "r",
        "gradient decrease",
        "|g·u_min|·r",
        "½|λ_min|·r²",
        "gradient ratio",
        "verdict",
        "reason",
    ];
    let rows = report
        .classes
        .iter()
        .chain(&report.all)
        .map(|c| {
            let numbers = c.first_order.map_or_else(
                || vec!["-".to_string(); 10],
                |f| {
                    vec![
                        sci(f.loss),
                        percent(Some(f.accuracy)),
                        sci(f.grad_norm),
                        sci(f.grad_curvature),
                        sci(f.slope_min),
                        sci(f.radius),
                        sci(f.gradient_decrease),
                        sci(f.slope_term),
                        sci(f.curvature_term),
                        format!("{:.3}", f.gradient_ratio()),
                    ]
                },
            );
            std::iter::once(class_name(c))
                .chain(numbers)
                .chain([c.verdict.label().to_string(), c.verdict_reason.clone()])
                .collect()
        })
        .collect();
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

/// Two analyses class by class.
pub(super) fn comparison_table(a: &Named<AnalysisReport>, b: &Named<AnalysisReport>) -> Block {
    let header = vec![
        "class".to_string(),
        "group".into(),
        format!("λ_min {}", a.label),
        format!("λ_min {}", b.label),
        "Δ λ_min".into(),
        format!("λ_max {}", a.label),
        format!("λ_max {}", b.label),
        format!("trace {}", a.label),
        format!("trace {}", b.label),
        format!("acc {}", a.label),
        format!("acc {}", b.label),
        format!("verdict {}", a.label),
        format!("verdict {}", b.label),
    ];
    let rows = a
        .value
        .classes
        .iter()
        .filter_map(|ca| {
            let cb = b.value.classes.iter().find(|c| c.class == ca.class)?;
            let i = ca.class?;
            Some(vec![
                format!("{} ({})", ca.name, i),
                group_name(ca.group),
                sci(ca.estimate.lambda_min),
                sci(cb.estimate.lambda_min),
                sci(cb.estimate.lambda_min - ca.estimate.lambda_min),
                sci(ca.estimate.lambda_max),
                sci(cb.estimate.lambda_max),
                sci(ca.estimate.trace),
                sci(cb.estimate.trace),
                percent(class_accuracy(&a.value, i)),
                percent(class_accuracy(&b.value, i)),
                ca.verdict.label().into(),
                if cb.verdict == ca.verdict {
                    cb.verdict.label().into()
                } else {
                    format!("**{}**", cb.verdict.label())
                },
            ])
        })
        .collect();
    Block::Table(header, rows)
}

/// Head, medium and tail of every analysis: mean λ_min, saddles and not-stationary classes,
/// test accuracy.
pub(super) fn group_table(analyses: &[Named<AnalysisReport>]) -> Block {
    let header = [
        "analysis",
        "group",
        "mean λ_min",
        "mean λ_min/λ_max",
        "saddle",
        "not stationary",
        "test accuracy",
    ];
    let mut rows = Vec::new();
    for a in analyses {
        for group in Group::ALL {
            let members = a
                .value
                .classes
                .iter()
                .filter(|c| c.group == Some(group))
                .count();
            if members == 0 {
                continue;
            }
            let count = |kind: VerdictKind| {
                let n = a
                    .value
                    .classes
                    .iter()
                    .filter(|c| c.group == Some(group) && c.verdict == kind)
                    .count();
                format!("{n}/{members}")
            };
            rows.push(vec![
                a.label.clone(),
                group.to_string(),
                group_mean(&a.value, group, |c| c.estimate.lambda_min).map_or("-".into(), sci),
                group_mean(&a.value, group, |c| c.ratio_min_max.unwrap_or(0.0))
                    .map_or("-".into(), |v| format!("{v:.4}")),
                count(VerdictKind::Saddle),
                count(VerdictKind::NotStationary),
                percent(group_accuracy(&a.value, group)),
            ]);
        }
    }
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

/// A run's last test metrics and its recipe.
pub(super) fn run_blocks(run: &Named<Run>) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(2, format!("Run {}", run.label))];
    if let Some(last) = run.value.log.last() {
        let g = &last.test.group_accuracy;
        blocks.push(Block::Paragraph(format!(
            "After {} epochs: test accuracy {} (head {}, medium {}, tail {}), test loss {:.4}. Directory `{}`.",
            last.epoch,
            percent(Some(last.test.accuracy)),
            percent(g.head),
            percent(g.medium),
            percent(g.tail),
            last.test.loss,
            run.dir.display()
        )));
    }
    if let Some(meta) = &run.value.meta {
        let c = &meta.config;
        let sam = c.sam.as_ref().map_or("off".to_string(), |s| {
            format!(
                "ρ {} from epoch {}{}",
                s.rho,
                s.from_epoch,
                if s.adaptive { " (ASAM)" } else { "" }
            )
        });
        let counts: Vec<String> = meta
            .data
            .train_counts
            .iter()
            .map(usize::to_string)
            .collect();
        blocks.push(Block::List(vec![
            format!(
                "data: `{}`, {} imbalance, ratio {}, n_max {}, train counts {}",
                meta.data.dataset,
                meta.data.imbalance,
                meta.data.ratio,
                meta.data.n_max,
                counts.join(", ")
            ),
            format!(
                "model: `{}`; loss: `{}`; class re-weighting: {}; SAM: {sam}",
                c.model, c.loss, c.reweighting
            ),
            format!(
                "{}, batch {}, lr {} ({}), momentum {}, weight decay {}, seed {}",
                epochs_and_plan(c.epochs, c.schedule_span()),
                c.batch_size,
                c.lr,
                schedule_text(c.schedule, c.epochs, c.schedule_span()),
                c.momentum,
                c.weight_decay,
                c.seed
            ),
        ]));
    }
    blocks
}

/// `30 epochs`, or for a run whose length changed on resume `35 epochs (planned: 30)`.
fn epochs_and_plan(epochs: usize, span: usize) -> String {
    if epochs == span {
        format!("{epochs} epochs")
    } else {
        format!("{epochs} epochs (planned: {span})")
    }
}

/// `step schedule`, and how it covers epochs past its plan.
fn schedule_text(schedule: LrSchedule, epochs: usize, span: usize) -> String {
    if epochs > span {
        format!(
            "{schedule} schedule over {span} epochs, then its final rate for {} more",
            epochs - span
        )
    } else {
        format!("{schedule} schedule")
    }
}

/// What an analysis was run on and how: checkpoint, data, loss and estimator settings.
pub(super) fn analysis_settings(a: &Named<AnalysisReport>) -> Block {
    Block::Paragraph(format!(
        "Checkpoint `{}` (sha256 `{}`), data `{}`, {} split; Hessian of the {} loss, {} Lanczos steps × {} probes{}, seed {}, {}{}. Verdict thresholds: saddle ratio {}{}.",
        a.value.checkpoint.path,
        &a.value.checkpoint.sha256,
        a.value.dataset,
        a.value.split,
        a.value.params.loss,
        a.value.params.lanczos_steps,
        a.value.params.probes,
        if a.value.params.probes == 1 {
            " (one probe: no standard errors)"
        } else {
            ""
        },
        a.value.params.seed,
        a.value.params.dtype,
        // Only when not the default, so default reports read as before.
        match a.value.params.basis {
            BasisPrecision::F64 => "",
            BasisPrecision::F32 => ", f32 Lanczos basis (Ritz values to ~1e-7 relative)",
        },
        a.value.params.saddle_ratio,
        a.value.params.verdict.map_or(String::new(), |v| format!(
            ", gradient ratio {}, skill {}, diverged loss ratio {}",
            v.max_gradient_ratio, v.min_skill, v.diverged_loss_ratio
        ))
    ))
}

/// The line explaining bounds marked `r` in the class table, when there are any.
pub(super) fn bound_note(report: &AnalysisReport) -> Option<Block> {
    let estimates = report
        .classes
        .iter()
        .chain(&report.all)
        .map(|c| &c.estimate);
    bounds::note(estimates).map(|line| Block::Paragraph(format!("{line}.")))
}

/// The trace identity of an analysis, when it was checked.
pub(super) fn trace_identity(report: &AnalysisReport) -> Option<Block> {
    report.trace_identity.map(|t| {
        Block::Paragraph(format!(
            "Trace identity with shared probes: tr H_all = {:.6e}, Σ_c π_c tr H_c = {:.6e} (relative residual {:.1e}).",
            t.all, t.weighted_sum, t.relative_residual
        ))
    })
}

/// The facts needed to reproduce every number: versions, the command line, seeds and
/// checkpoint hashes.
pub(super) fn reproducibility(
    analyses: &[Named<AnalysisReport>],
    runs: &[Named<Run>],
    command_line: &str,
) -> Block {
    let mut facts = vec![
        format!("saddlescope {}", env!("CARGO_PKG_VERSION")),
        format!("command: `{command_line}`"),
    ];
    for a in analyses {
        facts.push(format!(
            "{}: checkpoint `{}` sha256 `{}`, probe seed {}, written by saddlescope {}",
            a.label,
            a.value.checkpoint.path,
            a.value.checkpoint.sha256,
            a.value.params.seed,
            a.value.version
        ));
    }
    for r in runs {
        if let Some(meta) = &r.value.meta {
            facts.push(format!(
                "{}: training seed {}, saddlescope {}",
                r.label, meta.config.seed, meta.version
            ));
        }
    }
    Block::List(facts)
}
