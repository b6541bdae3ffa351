//! The report's figures: each drawn by the plot crate into `OUT/figures/`, returned as the
//! captioned [`Block`]s that show it, every path kept for the list of files written.

use std::path::{Path, PathBuf};

use saddlescope_plot::{
    class_grid, compare_densities, compare_lambda_min, eigen_bars, head_tail, landscape_curves,
    study_group_accuracy, study_lambda_min, training_curves, BarOptions, CurveOptions,
    DensityOptions, GridOptions, Labeled, LandscapeOptions, XScale,
};
use saddlescope_results::{
    read_landscapes, AnalysisDir, AnalysisReport, DirectionKind, Group, StudyReport,
};

use super::doc::Block;
use super::inputs::{Named, Run};
use super::text::{group_name, sci};

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

/// Draws the figures of a report into `OUT/figures/`.
pub(super) struct FigureWriter {
    /// The report directory (figure links are relative to it).
    out: PathBuf,
    /// `OUT/figures`.
    dir: PathBuf,
    /// Eigenvalue axis of the density figures.
    xscale: XScale,
    /// Every figure drawn, in order.
    written: Vec<PathBuf>,
}

impl FigureWriter {
    /// A writer into `out/figures` (created).
    pub(super) fn new(out: &Path, xscale: XScale) -> anyhow::Result<Self> {
        let dir = out.join("figures");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            out: out.to_path_buf(),
            dir,
            xscale,
            written: Vec::new(),
        })
    }

    /// The figures drawn so far.
    pub(super) fn into_written(self) -> Vec<PathBuf> {
        self.written
    }

    /// The block showing the figure at `path` (drawn), linked relative to the report.
    fn figure(&mut self, path: PathBuf, caption: String) -> Block {
        let relative = path
            .strip_prefix(&self.out)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.clone());
        self.written.push(path);
        Block::Figure(relative, caption)
    }

    fn grid_options(&self) -> GridOptions {
        GridOptions {
            xscale: self.xscale,
            ..GridOptions::default()
        }
    }

    /// Two analyses side by side: their class densities and their λ_min.
    pub(super) fn comparison(
        &mut self,
        a: &Named<AnalysisReport>,
        b: &Named<AnalysisReport>,
    ) -> anyhow::Result<Vec<Block>> {
        let la = Labeled::new(&a.label, &a.value);
        let lb = Labeled::new(&b.label, &b.value);
        let grid = self.dir.join("compare_densities.png");
        compare_densities(la, lb, &grid, &self.grid_options())?;
        let bars = self.dir.join("compare_lambda_min.png");
        compare_lambda_min(la, lb, &bars, &BarOptions::default())?;
        Ok(vec![
            self.figure(
                grid,
                format!("Per-class eigen-densities, {} against {}", a.label, b.label),
            ),
            self.figure(bars, "λ_min per class, side by side".into()),
        ])
    }

    /// A study's λ_min per class and accuracy per group, every arm side by side, with the
    /// bootstrap intervals.
    pub(super) fn study(&mut self, study: &StudyReport) -> anyhow::Result<Vec<Block>> {
        let lambda = self.dir.join("study_lambda_min.png");
        study_lambda_min(study, &lambda, &BarOptions::default())?;
        let accuracy = self.dir.join("study_group_accuracy.png");
        study_group_accuracy(study, &accuracy, &BarOptions::default())?;
        Ok(vec![
            self.figure(
                lambda,
                "λ_min per class, head → tail: mean over seeds, error bars the bootstrap interval"
                    .into(),
            ),
            self.figure(
                accuracy,
                "Test accuracy per group: mean over seeds, error bars the bootstrap interval"
                    .into(),
            ),
        ])
    }

    /// Test accuracy by epoch of every run, overall and per group.
    pub(super) fn training(&mut self, runs: &[Named<Run>]) -> anyhow::Result<Block> {
        let curves = self.dir.join("training_curves.png");
        let labeled: Vec<Labeled<'_, [saddlescope_results::EpochRecord]>> = runs
            .iter()
            .map(|r| Labeled::new(&r.label, r.value.log.as_slice()))
            .collect();
        training_curves(&labeled, &curves, &CurveOptions::default())?;
        Ok(self.figure(
            curves,
            "Test accuracy by epoch: overall and per group".into(),
        ))
    }

    /// One analysis: every class's density, the eigenvalue bars, head against tail (when
    /// both groups have a class) and its loss landscapes, under `figures/LABEL/`.
    pub(super) fn analysis(&mut self, a: &Named<AnalysisReport>) -> anyhow::Result<Vec<Block>> {
        let dir = self.dir.join(slug(&a.label));
        std::fs::create_dir_all(&dir)?;
        let grid = dir.join("density_grid.png");
        class_grid(&a.value, &grid, &self.grid_options())?;
        let bars = dir.join("eigen_bars.png");
        eigen_bars(&a.value, &bars, &BarOptions::default())?;
        let mut blocks = vec![
            self.figure(
                grid,
                format!("{}: eigen-density of every class, head → tail", a.label),
            ),
            self.figure(
                bars,
                format!(
                    "{}: λ_max and λ_min per class with residual bounds",
                    a.label
                ),
            ),
        ];
        if a.value.has_group(Group::Head) && a.value.has_group(Group::Tail) {
            let overlay = dir.join("head_tail.png");
            head_tail(
                &a.value,
                &overlay,
                &DensityOptions {
                    xscale: self.xscale,
                    ..DensityOptions::default()
                },
            )?;
            blocks.push(self.figure(
                overlay,
                format!("{}: mean density of head vs tail classes", a.label),
            ));
        }
        blocks.extend(self.landscapes(a, &dir)?);
        Ok(blocks)
    }

    /// The loss landscapes of an analysis (`analyze --landscape`, `OUT/landscape/`),
    /// redrawn into `dir` as `landscape_class_NNN.png`: a heading and one captioned figure
    /// per class; nothing when the analysis has none.
    fn landscapes(&mut self, a: &Named<AnalysisReport>, dir: &Path) -> anyhow::Result<Vec<Block>> {
        let landscapes = read_landscapes(&AnalysisDir::new(&a.dir))?;
        if landscapes.is_empty() {
            return Ok(Vec::new());
        }
        let mut blocks = vec![Block::Heading(
            2,
            format!(
                "{}: loss landscapes along the extreme eigenvectors",
                a.label
            ),
        )];
        for l in &landscapes {
            let class = a.value.classes.iter().find(|c| c.class == Some(l.class));
            let who = class.map_or(format!("class {}", l.class), |c| {
                format!(
                    "class {} ({}, {})",
                    c.name,
                    group_name(c.group),
                    c.verdict.label()
                )
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
            let caption = format!(
                "{}: loss of {who} along u_max, u_min and a random direction, dashed the quadratic model; L(w) = {}{along_min}.",
                a.label,
                sci(l.loss0)
            );
            blocks.push(self.figure(path, caption));
        }
        Ok(blocks)
    }
}
