//! `saddlescope merge`: the shards of a sharded analysis (`analyze --shard I/N`) into the
//! report an unsharded run writes, byte for byte, after checking that they are one analysis
//! split once and completely (`saddlescope_results::merge_shards`); the shards of a study
//! (`study --shard I/N`) into its aggregates ([`crate::jobs::study::merge_study`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use saddlescope_results::{merge_shards, write_merged, AnalysisDir};
use serde_json::json;

use crate::error::usage;
use crate::jobs::analyze::table;
use crate::jobs::study::{merge_study, SHARD_FILE};
use crate::out_dir::{outputs, OutDir};

/// Flags of `saddlescope merge`.
#[derive(Debug, Args)]
#[command(
    after_help = "Checks that the shards share the checkpoint (SHA-256), data, settings, seed and \
saddlescope version, that each of shards 1..N is given once, and that each holds a result for \
every Hessian it owns; names the shard, directory or field otherwise. Outputs: OUT/spectrum.json, \
OUT/summary.csv and OUT/classes/*.json, as `analyze` without --shard writes them. A merge of \
another analysis in OUT is refused unless --force; one process at a time writes OUT."
)]
pub struct MergeArgs {
    /// The shards' output directories (each with the shard.json of `analyze --shard`, or
    /// the study-shard.json of `study --shard`)
    #[arg(value_name = "SHARD_DIR", required = true)]
    shards: Vec<PathBuf>,
    /// Output directory of the merged analysis
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace a merged analysis of another checkpoint or other settings in OUT, and take
    /// over a lock another host left on the directory
    #[arg(long)]
    force: bool,
    /// No table and no status line
    #[arg(long)]
    quiet: bool,
}

/// Runs `saddlescope merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let study = args.shards.iter().any(|d| d.join(SHARD_FILE).exists());
    if let Some(shard) = args.shards.iter().find(|dir| same_dir(dir, &args.out)) {
        return Err(usage(format!(
            "--out {}: that is the shard directory {}; merge into a directory of its own",
            args.out.display(),
            shard.display()
        )));
    }
    if study {
        return merge_study(&args.shards, &args.out, args.force, args.quiet);
    }
    let merged = merge_shards(&args.shards)?;
    let mut out = OutDir::lock(&args.out, args.force, args.quiet)?;
    let settings = json!({
        "checkpoint_sha256": merged.report.checkpoint.sha256,
        "dataset": merged.report.dataset,
        "split": merged.report.split,
        "params": merged.report.params,
        "shards": merged.shards.len(),
    });
    out.claim(&outputs::MERGE, &settings, args.force)?;
    write_merged(&AnalysisDir::new(&args.out), &merged)?;
    if !args.quiet {
        print!("{}", table(&merged.report));
        eprintln!(
            "merged {} shards into {}",
            merged.shards.len(),
            AnalysisDir::new(&args.out).spectrum().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `a` and `b` name the same existing directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
