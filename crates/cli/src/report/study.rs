//! A study's words and tables: the conclusions on the paper's claims first, then the design,
//! the per-group aggregates, the paired differences and the cells, from `study.json` alone.

use saddlescope_results::{
    Conclusion, GroupMetric, GroupRow, HealthStatus, Interval, StudyReport, VerdictKind,
};

use super::doc::Block;
use super::text::{group_name, sci};

/// `mean [low, high]` with `format`, the mean alone for one seed, `-` without a value.
fn interval(i: Option<Interval>, format: fn(f64) -> String) -> String {
    match i {
        None => "-".into(),
        Some(i) if !i.has_spread() => format(i.mean),
        Some(i) => format!("{} [{}, {}]", format(i.mean), format(i.low), format(i.high)),
    }
}

fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn points(v: f64) -> String {
    format!("{:+.1} pt", 100.0 * v)
}

fn ratio(v: f64) -> String {
    format!("{v:.3}")
}

fn count(v: f64) -> String {
    format!("{v:.1}")
}

/// What a conclusion means for the paper, in plain words.
fn plainly(conclusion: Conclusion) -> &'static str {
    match conclusion {
        Conclusion::Supported => "Reproduced here.",
        Conclusion::Contradicted => "Not reproduced: the data contradict it.",
        Conclusion::Inconclusive => "Not reproduced: the data do not settle it.",
    }
}

/// The conclusions, the design and the aggregates.
pub(super) fn blocks(study: &StudyReport) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(1, "Conclusions".into())];
    for claim in &study.claims {
        blocks.push(Block::Paragraph(format!(
            "**Claim ({})**: {}. **{}.** {}",
            claim.id,
            claim.statement,
            claim.conclusion.as_str(),
            plainly(claim.conclusion)
        )));
        blocks.push(Block::List(vec![
            format!("Evidence: {}", claim.summary),
            format!("Criterion: {}.", claim.criterion),
        ]));
    }
    if !study.claims.iter().any(|c| c.id == "b") {
        blocks.push(Block::Paragraph(
            "**Claim (b)** (SAM reduces the tail classes' negative curvature and raises their accuracy) is not tested: it needs an arm with SAM beside a first arm without.".into(),
        ));
    }
    let unhealthy = study
        .cells
        .iter()
        .filter(|c| c.health.is_some_and(|h| h != HealthStatus::Trained))
        .count();
    if unhealthy > 0 {
        blocks.push(Block::Paragraph(format!(
            "**Caution**: {unhealthy} of {} cells failed the health check (untrained or diverged model): their verdicts are undetermined and their curvature says little (see Cells).",
            study.cells.len()
        )));
    }
    blocks.push(Block::Heading(1, "Design".into()));
    blocks.push(Block::Table(
        ["arm", "recipe", "SAM"].map(String::from).to_vec(),
        study
            .design
            .arms
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    format!("`{}`", a.recipe),
                    if a.sam { "yes" } else { "no" }.into(),
                ]
            })
            .collect(),
    ));
    let seeds: Vec<String> = study.design.seeds.iter().map(|s| s.to_string()).collect();
    let b = &study.bootstrap;
    blocks.push(Block::Paragraph(format!(
        "Seeds {} (each cell's training and probe vectors). Every number below is a mean over seeds with its {}% percentile bootstrap interval in brackets ({} replicates, seed {}; one seed gives no interval). With 5 seeds or fewer a percentile interval covers less than its level (about 90% for a 95% interval at 5 seeds): read the conclusions as a screen, not a test. λ_min/λ_max and λ_min of a group are the means over its classes.",
        seeds.join(", "),
        (b.level * 100.0).round(),
        b.replicates,
        b.seed
    )));
    blocks.push(Block::Heading(1, "Per group".into()));
    let header = [
        "arm",
        "group",
        "classes",
        "test accuracy",
        "λ_min",
        "λ_min/λ_max",
        "trace",
        "saddles",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for arm in &study.arms {
        for g in &arm.groups {
            rows.push(group_row(&arm.arm, g, percent));
        }
    }
    blocks.push(Block::Table(header.clone(), rows));
    for c in &study.comparisons {
        blocks.push(Block::Heading(
            1,
            format!("{} − {}, paired by seed", c.b, c.a),
        ));
        let rows = c
            .groups
            .iter()
            .map(|g| group_row(&format!("{} − {}", c.b, c.a), g, points))
            .collect();
        blocks.push(Block::Table(header.clone(), rows));
        blocks.push(Block::Table(
            [
                "class",
                "group",
                "n",
                "Δ test accuracy",
                "Δ λ_min",
                "Δ λ_min/λ_max",
            ]
            .map(String::from)
            .to_vec(),
            c.classes
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        group_name(k.group),
                        k.train_count.to_string(),
                        interval(k.metrics.test_accuracy, points),
                        interval(k.metrics.lambda_min, sci),
                        interval(k.metrics.ratio_min_max, ratio),
                    ]
                })
                .collect(),
        ));
    }
    blocks
}

/// One row of a per-group table.
fn group_row(label: &str, g: &GroupRow, accuracy: fn(f64) -> String) -> Vec<String> {
    let m = |metric| g.metrics.get(metric);
    vec![
        label.to_string(),
        g.group.to_string(),
        g.classes.to_string(),
        interval(m(GroupMetric::TestAccuracy), accuracy),
        interval(m(GroupMetric::LambdaMin), sci),
        interval(m(GroupMetric::RatioMinMax), ratio),
        interval(m(GroupMetric::Trace), sci),
        interval(m(GroupMetric::SaddleCount), count),
    ]
}

/// One row per cell: its health, accuracies and saddle classes.
pub(super) fn cell_table(study: &StudyReport) -> Vec<Block> {
    let rows = study
        .cells
        .iter()
        .map(|c| {
            let saddles: Vec<&str> = c
                .classes
                .iter()
                .filter(|k| k.verdict == VerdictKind::Saddle)
                .map(|k| k.name.as_str())
                .collect();
            vec![
                c.arm.clone(),
                c.seed.to_string(),
                c.health.map_or("-", |h| h.as_str()).to_string(),
                percent(c.test_accuracy),
                c.group_accuracy.tail.map_or("-".into(), percent),
                if saddles.is_empty() {
                    "none".into()
                } else {
                    saddles.join(" ")
                },
                format!(
                    "`{}`",
                    &c.checkpoint_sha256[..c.checkpoint_sha256.len().min(12)]
                ),
            ]
        })
        .collect();
    vec![
        Block::Heading(1, "Cells".into()),
        Block::Table(
            [
                "arm",
                "seed",
                "model",
                "test accuracy",
                "tail accuracy",
                "saddle classes",
                "checkpoint",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ),
    ]
}
