//! `saddlescope data`: inspect long-tailed profiles and data sets.
//!
//! - `data counts` prints the per-class train counts of a profile as a JSON array; it needs
//!   no data (`--classes`, `--n-max` stand in for the data set).
//! - `data summary` loads a data set and prints per-class train counts before and after the
//!   imbalance, test counts and groups, as an aligned table or (`--json`) one JSON document.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use saddlescope_data::{class_counts, Dataset, LongTailed};
use serde::Serialize;

use crate::dataset_args::{load_long_tailed, DatasetArgs, ImbalanceArgs};
use crate::error::ResultExt;

/// Flags of `saddlescope data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to show.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Print the per-class train counts of a long-tail profile as a JSON array (no data read)
    Counts(CountsArgs),
    /// Print per-class train (before and after the imbalance) and test counts and groups
    Summary(SummaryArgs),
}

/// Flags of `saddlescope data counts`.
#[derive(Debug, Args)]
pub struct CountsArgs {
    /// Number of classes
    #[arg(long, value_name = "C", default_value_t = 10)]
    pub classes: usize,

    /// Head-class train count (5000 is CIFAR-10's per-class size, 500 CIFAR-100's)
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub n_max: usize,

    #[command(flatten)]
    pub imbalance: ImbalanceArgs,
}

/// Flags of `saddlescope data summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub data: DatasetArgs,

    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs `saddlescope data ...`.
pub fn run(args: DataArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DataCommand::Counts(args) => counts(&args),
        DataCommand::Summary(args) => summary(&args),
    }
}

fn counts(args: &CountsArgs) -> anyhow::Result<ExitCode> {
    let (imbalance, ratio) = args.imbalance.validate()?;
    let counts = class_counts(imbalance, args.classes, args.n_max, ratio).cli()?;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string(&counts)?
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One class of a summary.
#[derive(Debug, Serialize)]
struct ClassRow<'a> {
    class: usize,
    name: &'a str,
    /// Train samples in the source data set.
    train: usize,
    /// Train samples kept by the imbalance.
    long_tailed: usize,
    test: usize,
    group: saddlescope_data::Group,
}

/// The `--json` document of `data summary`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    setting: &'a LongTailed,
    shape: [usize; 3],
    classes: Vec<ClassRow<'a>>,
}

fn rows<'a>(lt: &LongTailed, data: &'a Dataset) -> Vec<ClassRow<'a>> {
    let test = data.test().class_counts();
    (0..lt.classes())
        .map(|c| ClassRow {
            class: c,
            name: &data.class_names()[c],
            train: lt.source_train_counts[c],
            long_tailed: lt.train_counts[c],
            test: test[c],
            group: lt.groups[c],
        })
        .collect()
}

fn summary(args: &SummaryArgs) -> anyhow::Result<ExitCode> {
    let (spec, config) = args.data.validate()?;
    let (lt, data) = load_long_tailed(&spec, &config)?;
    let rows = rows(&lt, &data);
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = Summary {
            setting: &lt,
            shape: data.shape().dims(),
            classes: rows,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        write!(out, "{}", table(&lt, &data, &rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The aligned text table: a two-line header, one line per class, a total line.
fn table(lt: &LongTailed, data: &Dataset, rows: &[ClassRow<'_>]) -> String {
    let mut cells: Vec<[String; 6]> = vec![[
        "class".into(),
        "name".into(),
        "train".into(),
        "long-tailed".into(),
        "test".into(),
        "group".into(),
    ]];
    for r in rows {
        cells.push([
            r.class.to_string(),
            r.name.to_string(),
            r.train.to_string(),
            r.long_tailed.to_string(),
            r.test.to_string(),
            r.group.to_string(),
        ]);
    }
    let sum = |f: fn(&ClassRow<'_>) -> usize| rows.iter().map(f).sum::<usize>().to_string();
    cells.push([
        "total".into(),
        String::new(),
        sum(|r| r.train),
        sum(|r| r.long_tailed),
        sum(|r| r.test),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = format!(
        "data set   {} ({} classes, {})\nimbalance  {}, ratio {}, n_max {}, seed {}, groups {}\n\n",
        lt.dataset,
        lt.classes(),
        data.shape(),
        lt.imbalance,
        lt.ratio,
        lt.n_max,
        lt.seed,
        lt.group_rule,
    );
    for row in &cells {
        // Numbers right-aligned, class name and group left-aligned.
        let line = format!(
            "{:>w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:<w5$}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
