//! Assembles the report: figures (via the plot crate), tables, verdicts, settings and the
//! facts needed to reproduce every number.

use std::path::{Path, PathBuf};

use saddlescope_analysis::{
    read_landscapes, AnalysisDir, AnalysisReport, ClassSpectrum, DirectionKind,
};
use saddlescope_data::Group;
use saddlescope_plot::{
    class_grid, compare_densities, compare_lambda_min, eigen_bars, head_tail, landscape_curves,
    training_curves, BarOptions, CurveOptions, DensityOptions, GridOptions, Labeled,
    LandscapeOptions, XScale,
};
use saddlescope_spectral::BasisPrecision;
use saddlescope_train::io::write_atomic;

use super::doc::{Block, Document};
use super::inputs::{Inputs, Named, Run};

/// Report settings.
pub struct ReportOptions {
    /// Title of the report.
    pub title: String,
    /// Eigenvalue axis of the density figures.
    pub xscale: XScale,
    /// The command line that produced the report (reproducibility).
    pub command_line: String,
}

fn group_name(group: Option<Group>) -> String {
    group.map_or("-".into(), |g| format!("{g:?}").to_lowercase())
}

/// A label as a directory name: `CE+DRW` → `ce-drw`.
fn slug(label: &str) -> String {
    let mapped: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn sci(v: f64) -> String {
    format!("{v:.3e}")
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

/// Per-class test accuracy stored in an analysis's checkpoint metadata (our checkpoints).
fn class_accuracy(report: &AnalysisReport, class: usize) -> Option<f64> {
    report
        .checkpoint
        .metadata
        .get("test")?
        .get("class_accuracy")?
        .get(class)?
        .as_f64()
}

/// Group accuracy stored in an analysis's checkpoint metadata.
fn group_accuracy(report: &AnalysisReport, group: &str) -> Option<f64> {
    report
        .checkpoint
        .metadata
        .get("test")?
        .get("group_accuracy")?
        .get(group)?
        .as_f64()
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

fn verdict_sentence(a: &Named<AnalysisReport>) -> String {
    let saddles: Vec<&ClassSpectrum> = a.value.classes.iter().filter(|c| c.saddle).collect();
    let total = a.value.classes.len();
    if saddles.is_empty() {
        return format!(
            "**{}**: no class at a saddle (|λ_min|/λ_max < {} for all {total} classes).",
            a.label, a.value.params.saddle_ratio
        );
    }
    let list: Vec<String> = saddles
        .iter()
        .map(|c| format!("{} ({})", c.name, group_name(c.group)))
        .collect();
    format!(
        "**{}**: {} of {total} classes at a saddle (λ_min < 0 beyond its bound and |λ_min|/λ_max ≥ {}): {}.",
        a.label,
        saddles.len(),
        a.value.params.saddle_ratio,
        list.join(", ")
    )
}

fn class_table(report: &AnalysisReport) -> Block {
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
        "saddle",
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
                format!("{:.1e}", e.lambda_min_bound),
                sci(e.lambda_max),
                format!("{:.1e}", e.lambda_max_bound),
                c.ratio_min_max.map_or("-".into(), |r| format!("{r:.4}")),
                sci(e.trace),
                e.trace_stderr.map_or("-".into(), sci),
                format!("{:.3}", e.negative_mass),
                percent(c.class.and_then(|i| class_accuracy(report, i))),
                if c.saddle {
                    "**SADDLE**".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

fn comparison_table(a: &Named<AnalysisReport>, b: &Named<AnalysisReport>) -> Block {
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
            ])
        })
        .collect();
    Block::Table(header, rows)
}

fn group_table(analyses: &[Named<AnalysisReport>]) -> Block {
    let header = [
        "analysis",
        "group",
        "mean λ_min",
        "mean λ_min/λ_max",
        "saddles",
        "test accuracy",
    ];
    let mut rows = Vec::new();
    for a in analyses {
        for (group, key) in [
            (Group::Head, "head"),
            (Group::Medium, "medium"),
            (Group::Tail, "tail"),
        ] {
            let members = a
                .value
                .classes
                .iter()
                .filter(|c| c.group == Some(group))
                .count();
            if members == 0 {
                continue;
            }
            let saddles = a
                .value
                .classes
                .iter()
                .filter(|c| c.group == Some(group) && c.saddle)
                .count();
            rows.push(vec![
                a.label.clone(),
                key.into(),
                group_mean(&a.value, group, |c| c.estimate.lambda_min).map_or("-".into(), sci),
                group_mean(&a.value, group, |c| c.ratio_min_max.unwrap_or(0.0))
                    .map_or("-".into(), |v| format!("{v:.4}")),
                format!("{saddles}/{members}"),
                percent(group_accuracy(&a.value, key)),
            ]);
        }
    }
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

/// The loss landscapes of an analysis (`analyze --landscape`, `OUT/landscape/`), redrawn
/// into `dir` as `landscape_class_NNN.png`: a heading and one captioned figure per class
/// (linked by `relative` path), with the paths written; nothing when the analysis has none.
fn landscape_blocks(
    a: &Named<AnalysisReport>,
    dir: &Path,
    relative: &dyn Fn(&Path) -> PathBuf,
) -> anyhow::Result<(Vec<Block>, Vec<PathBuf>)> {
    let landscapes = read_landscapes(&AnalysisDir::new(&a.dir))?;
    if landscapes.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut blocks = vec![Block::Heading(
        2,
        format!(
            "{}: loss landscapes along the extreme eigenvectors",
            a.label
        ),
    )];
    let mut written = Vec::new();
    for l in &landscapes {
        let class = a.value.classes.iter().find(|c| c.class == Some(l.class));
        let who = class.map_or(format!("class {}", l.class), |c| {
            let saddle = if c.saddle { ", saddle" } else { "" };
            format!("class {} ({}{saddle})", c.name, group_name(c.group))
        });
        let path = dir.join(format!("landscape_class_{:03}.png", l.class));
        landscape_curves(
            l,
            &path,
            &LandscapeOptions {
                subtitle: Some(format!("{} · {}", a.label, who)),
                ..LandscapeOptions::default()
            },
        )?;
        let along_min = l.direction(DirectionKind::Min).map_or(String::new(), |d| {
            let (t, lowest) = d.lowest();
            if lowest < l.loss0 {
                format!(
                    "; along u_min (λ_min = {}) it falls by {} to {} at t = {}",
                    sci(d.eigenvalue),
                    sci(l.loss0 - lowest),
                    sci(lowest),
                    sci(t)
                )
            } else {
                format!(
                    "; along u_min (λ_min = {}) it never falls below L(w) on the grid",
                    sci(d.eigenvalue)
                )
            }
        });
        blocks.push(Block::Figure(
            relative(&path),
            format!(
                "{}: loss of {who} along u_max, u_min and a random direction, dashed the quadratic model; L(w) = {}{along_min}.",
                a.label,
                sci(l.loss0)
            ),
        ));
        written.push(path);
    }
    Ok((blocks, written))
}

fn run_blocks(run: &Named<Run>) -> Vec<Block> {
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
        blocks.push(Block::List(vec![
            format!(
                "data: `{}`, {:?} imbalance, ratio {}, n_max {}, train counts {:?}",
                meta.data.dataset,
                meta.data.imbalance,
                meta.data.ratio,
                meta.data.n_max,
                meta.data.train_counts
            ),
            format!(
                "model: `{}`; loss: `{}`; re-weighting: {:?}; SAM: {sam}",
                c.model, c.loss, c.reweighting
            ),
            format!(
                "{} epochs, batch {}, lr {} ({:?} schedule), momentum {}, weight decay {}, seed {}",
                c.epochs, c.batch_size, c.lr, c.schedule, c.momentum, c.weight_decay, c.seed
            ),
        ]));
    }
    blocks
}

/// Writes `report.md`, `report.html` and `figures/` into `out`.
pub fn write_report(
    inputs: &Inputs,
    out: &Path,
    options: &ReportOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)?;
    let relative = |p: &Path| {
        p.strip_prefix(out)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut blocks = Vec::new();
    let mut written = Vec::new();

    if !inputs.analyses.is_empty() {
        blocks.push(Block::Heading(1, "Verdict".into()));
        blocks.push(Block::List(
            inputs.analyses.iter().map(verdict_sentence).collect(),
        ));
        blocks.push(group_table(&inputs.analyses));
    }
    if let [a, b] = inputs.analyses.as_slice() {
        blocks.push(Block::Heading(1, format!("{} vs {}", a.label, b.label)));
        blocks.push(comparison_table(a, b));
        let la = Labeled {
            label: &a.label,
            value: &a.value,
        };
        let lb = Labeled {
            label: &b.label,
            value: &b.value,
        };
        let grid = figures.join("compare_densities.png");
        compare_densities(
            la,
            lb,
            &grid,
            &GridOptions {
                xscale: options.xscale,
                ..GridOptions::default()
            },
        )?;
        let bars = figures.join("compare_lambda_min.png");
        compare_lambda_min(la, lb, &bars, &BarOptions::default())?;
        blocks.push(Block::Figure(
            relative(&grid),
            format!("Per-class eigen-densities, {} against {}", a.label, b.label),
        ));
        blocks.push(Block::Figure(
            relative(&bars),
            "λ_min per class, side by side".into(),
        ));
        written.extend([grid, bars]);
    }
    if !inputs.runs.is_empty() {
        let curves = figures.join("training_curves.png");
        let labeled: Vec<Labeled<'_, [saddlescope_train::EpochRecord]>> = inputs
            .runs
            .iter()
            .map(|r| Labeled {
                label: &r.label,
                value: r.value.log.as_slice(),
            })
            .collect();
        training_curves(&labeled, &curves, &CurveOptions::default())?;
        blocks.push(Block::Heading(1, "Training".into()));
        blocks.push(Block::Figure(
            relative(&curves),
            "Test accuracy by epoch: overall and per group".into(),
        ));
        written.push(curves);
        for run in &inputs.runs {
            blocks.extend(run_blocks(run));
        }
    }
    for a in &inputs.analyses {
        let dir = figures.join(slug(&a.label));
        std::fs::create_dir_all(&dir)?;
        blocks.push(Block::Heading(1, format!("Analysis {}", a.label)));
        blocks.push(Block::Paragraph(format!(
            "Checkpoint `{}` (sha256 `{}`), data `{}`, {} split; Hessian of the {} loss, {} Lanczos steps × {} probes, seed {}, {}{}.",
            a.value.checkpoint.path,
            &a.value.checkpoint.sha256,
            a.value.dataset,
            a.value.split,
            a.value.params.loss,
            a.value.params.lanczos_steps,
            a.value.params.probes,
            a.value.params.seed,
            a.value.params.dtype,
            // Only when not the default, so default reports read as before.
            match a.value.params.basis {
                BasisPrecision::F64 => "",
                BasisPrecision::F32 => ", f32 Lanczos basis (Ritz values to ~1e-7 relative)",
            }
        )));
        blocks.push(class_table(&a.value));
        if let Some(t) = &a.value.trace_identity {
            blocks.push(Block::Paragraph(format!(
                "Trace identity with shared probes: tr H_all = {:.6e}, Σ_c π_c tr H_c = {:.6e} (relative residual {:.1e}).",
                t.all, t.weighted_sum, t.relative_residual
            )));
        }
        let grid = dir.join("density_grid.png");
        class_grid(
            &a.value,
            &grid,
            &GridOptions {
                xscale: options.xscale,
                ..GridOptions::default()
            },
        )?;
        blocks.push(Block::Figure(
            relative(&grid),
            format!("{}: eigen-density of every class, head → tail", a.label),
        ));
        let bars = dir.join("eigen_bars.png");
        eigen_bars(&a.value, &bars, &BarOptions::default())?;
        blocks.push(Block::Figure(
            relative(&bars),
            format!(
                "{}: λ_max and λ_min per class with residual bounds",
                a.label
            ),
        ));
        written.extend([grid, bars]);
        let overlay = dir.join("head_tail.png");
        if head_tail(
            &a.value,
            &overlay,
            &DensityOptions {
                xscale: options.xscale,
                ..DensityOptions::default()
            },
        )
        .is_ok()
        {
            blocks.push(Block::Figure(
                relative(&overlay),
                format!("{}: mean density of head vs tail classes", a.label),
            ));
            written.push(overlay);
        }
        let (landscape, figures) = landscape_blocks(a, &dir, &relative)?;
        blocks.extend(landscape);
        written.extend(figures);
    }
    blocks.push(Block::Heading(1, "Reproducibility".into()));
    let mut facts = vec![
        format!("saddlescope {}", env!("CARGO_PKG_VERSION")),
        format!("command: `{}`", options.command_line),
    ];
    for a in &inputs.analyses {
        facts.push(format!(
            "{}: checkpoint `{}` sha256 `{}`, probe seed {}, written by saddlescope {}",
            a.label,
            a.value.checkpoint.path,
            a.value.checkpoint.sha256,
            a.value.params.seed,
            a.value.version
        ));
    }
    for r in &inputs.runs {
        if let Some(meta) = &r.value.meta {
            facts.push(format!(
                "{}: training seed {}, saddlescope {}",
                r.label, meta.config.seed, meta.version
            ));
        }
    }
    blocks.push(Block::List(facts));

    let doc = Document {
        title: options.title.clone(),
        blocks,
    };
    let md_path = out.join("report.md");
    write_atomic(&md_path, doc.markdown().as_bytes())?;
    let html_path = out.join("report.html");
    write_atomic(&html_path, doc.html(out)?.as_bytes())?;
    written.extend([md_path, html_path]);
    Ok(written)
}
