//! Assembles the report: the sections in order, their words and tables ([`super::text`])
//! and figures ([`FigureWriter`]), then writes it as Markdown and HTML.

use std::path::{Path, PathBuf};

use saddlescope_plot::XScale;
use saddlescope_results::{write_atomically, StudyReport};

use super::doc::{Block, Document};
use super::figures::FigureWriter;
use super::inputs::Inputs;
use super::text;

/// Report settings.
pub struct ReportOptions {
    /// Title of the report.
    pub title: String,
    /// Eigenvalue axis of the density figures.
    pub xscale: XScale,
    /// The command line that produced the report (reproducibility).
    pub command_line: String,
}

/// Writes `report.md`, `report.html` and `figures/` into `out`; returns every file written.
///
/// # Errors
/// The first figure or file that cannot be written, naming it.
pub fn write_report(
    inputs: &Inputs,
    out: &Path,
    options: &ReportOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut figures = FigureWriter::new(out, options.xscale)?;
    let doc = document(inputs, options, &mut figures)?;
    let mut written = figures.into_written();
    written.extend(write_document(&doc, out)?);
    Ok(written)
}

/// Writes the report of a study: its conclusions, aggregates and figures first, then the
/// sections of `details` (runs and analyses to show in full: the demo's first seed), into
/// `out` as [`write_report`] does.
///
/// # Errors
/// As [`write_report`].
pub fn write_study_report(
    study: &StudyReport,
    details: &Inputs,
    out: &Path,
    options: &ReportOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut figures = FigureWriter::new(out, options.xscale)?;
    let mut blocks = super::study::blocks(study);
    blocks.extend(figures.study(study)?);
    blocks.extend(super::study::cell_table(study));
    if !details.analyses.is_empty() {
        blocks.push(Block::Heading(
            1,
            format!("Seed {} in full", study.design.seeds[0]),
        ));
    }
    let rest = document(details, options, &mut figures)?;
    blocks.extend(rest.blocks);
    let doc = Document {
        title: options.title.clone(),
        blocks,
    };
    let mut written = figures.into_written();
    written.extend(write_document(&doc, out)?);
    Ok(written)
}

/// The report's sections: verdicts, a comparison of two analyses, training, each analysis,
/// reproducibility; figures drawn by `figures` as they are placed.
fn document(
    inputs: &Inputs,
    options: &ReportOptions,
    figures: &mut FigureWriter,
) -> anyhow::Result<Document> {
    let mut blocks = Vec::new();
    if !inputs.analyses.is_empty() {
        blocks.push(Block::Heading(1, "Verdict".into()));
        blocks.push(Block::List(
            inputs.analyses.iter().map(text::verdict_sentence).collect(),
        ));
        blocks.push(text::verdict_rule());
        blocks.push(text::group_table(&inputs.analyses));
    }
    if let [a, b] = inputs.analyses.as_slice() {
        blocks.push(Block::Heading(1, format!("{} vs {}", a.label, b.label)));
        blocks.push(text::comparison_table(a, b));
        blocks.extend(figures.comparison(a, b)?);
    }
    if !inputs.runs.is_empty() {
        let curves = figures.training(&inputs.runs)?;
        blocks.push(Block::Heading(1, "Training".into()));
        blocks.push(curves);
        for run in &inputs.runs {
            blocks.extend(text::run_blocks(run));
        }
    }
    for a in &inputs.analyses {
        blocks.push(Block::Heading(1, format!("Analysis {}", a.label)));
        blocks.push(text::analysis_settings(a));
        blocks.push(text::class_table(&a.value));
        blocks.push(text::first_order_table(&a.value));
        blocks.extend(text::bound_note(&a.value));
        blocks.extend(text::trace_identity(&a.value));
        blocks.extend(figures.analysis(a)?);
    }
    blocks.push(Block::Heading(1, "Reproducibility".into()));
    blocks.push(text::reproducibility(
        &inputs.analyses,
        &inputs.runs,
        &options.command_line,
    ));
    Ok(Document {
        title: options.title.clone(),
        blocks,
    })
}

/// Writes `doc` as `out/report.md` and `out/report.html` (figures embedded), each atomically;
/// returns both paths.
fn write_document(doc: &Document, out: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let md_path = out.join("report.md");
    write_atomically(&md_path, doc.markdown())?;
    let html_path = out.join("report.html");
    write_atomically(&html_path, doc.html(out)?)?;
    Ok([md_path, html_path])
}
