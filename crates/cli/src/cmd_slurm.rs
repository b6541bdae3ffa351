//! `saddlescope slurm`: writes ready-to-submit Slurm scripts for a sharded command (`analyze`
//! or `study`: a job array of shards, the merge as a dependent job, `submit.sh`; see [`crate::slurm`]). The
//! command's own flags are checked here, so that a typo fails now and not in the queue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cmd_analyze::AnalyzeCommandLine;
use crate::cmd_study::{first_forbidden, StudyArgs};
use crate::error::{clap_line, usage};
use crate::slurm::{Resources, ShardedJobs};

/// Flags of `saddlescope slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// What to run.
    #[command(subcommand)]
    command: SlurmCommand,
}

/// The commands `slurm` writes scripts for.
#[derive(Debug, Subcommand)]
enum SlurmCommand {
    /// A class-wise analysis as a job array of `analyze --shard I/N` and a dependent `merge`
    Analyze(SlurmAnalyzeArgs),
    /// A study as a job array of `study --shard I/N` (its cells) and a dependent `merge` (the aggregation)
    Study(SlurmStudyArgs),
}

/// Flags of `saddlescope slurm study`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: saddlescope slurm study --shards 10 --out studies/mnist --time 2:00:00 \
-- --seeds 0-4 --epochs 30\n\
Writes OUT/slurm/study.sbatch (the job array: task I runs `study ... --shard I/N --out \
OUT/shards/shard-I-of-N --resume`, the cells that shard owns), OUT/slurm/merge.sbatch (`merge` of \
the N shards: the aggregation, study.json byte-identical to an unsharded study, figures and \
report into OUT) and OUT/slurm/submit.sh, which submits the array and then the merge with \
--dependency=afterok on it. --device cuda among the study arguments makes a GPU job (--gres)."
)]
struct SlurmStudyArgs {
    /// Number of shards: the array's tasks, each an equal share of the cells (arms x seeds;
    /// more shards than cells leave some empty)
    #[arg(long, value_name = "N")]
    shards: usize,
    /// Directory of the aggregated study; the shards go to OUT/shards/, the scripts and logs
    /// to OUT/slurm/
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    resources: ResourceArgs,
    /// The study arguments (--arm, --seeds, --epochs, --analyze-args, ...), without --out,
    /// --shard and --resume
    #[arg(last = true, value_name = "STUDY_ARGS")]
    study: Vec<String>,
}

/// The study arguments as `saddlescope study` parses them.
#[derive(Debug, Parser)]
#[command(name = "study", no_binary_name = true)]
struct StudyCommandLine {
    #[command(flatten)]
    args: StudyArgs,
}

/// Flags of `saddlescope slurm analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: saddlescope slurm analyze --shards 8 --out an/ce-drw --partition gpu \
--time 12:00:00 -- runs/ce-drw/last.safetensors --device cuda --dtype f32\n\
Writes OUT/slurm/analyze.sbatch (the job array: task I runs `analyze ... --shard I/N --out \
OUT/shards/shard-I-of-N --resume`), OUT/slurm/merge.sbatch (`merge` of the N shards into OUT) \
and OUT/slurm/submit.sh, which submits the array and then the merge with \
--dependency=afterok on it. --device cuda among the analyze arguments makes a GPU job \
(--gres). Paths stay as given: the jobs run in the current directory (#SBATCH --chdir)."
)]
struct SlurmAnalyzeArgs {
    /// Number of shards: the array's tasks, each a part of the Hessians of about equal
    /// sample count (more shards than Hessians leave some empty)
    #[arg(long, value_name = "N")]
    shards: usize,
    /// Directory of the merged analysis; the shards go to OUT/shards/, the scripts and logs
    /// to OUT/slurm/
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    resources: ResourceArgs,
    /// The analyze arguments: the checkpoint and its flags, without --out, --shard, --resume
    /// and --landscape
    #[arg(last = true, required = true, value_name = "ANALYZE_ARGS")]
    analyze: Vec<String>,
}

/// What each job asks the scheduler for.
#[derive(Debug, Args)]
struct ResourceArgs {
    /// Slurm partition
    #[arg(long, value_name = "NAME")]
    partition: Option<String>,
    /// Slurm account
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// Time limit of each job, as sbatch takes it (e.g. 12:00:00 or 2-00:00:00); a shard
    /// stopped by it continues where it stopped when rerun
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// CPU cores per shard (its HVP threads)
    #[arg(long, value_name = "N", default_value_t = 4)]
    cpus_per_task: usize,
    /// Memory per shard, as sbatch takes it (e.g. 16G)
    #[arg(long, value_name = "SIZE")]
    mem: Option<String>,
    /// Generic resources of a GPU shard (--device cuda)
    #[arg(long, value_name = "SPEC", default_value = "gpu:1")]
    gres: String,
    /// Another #SBATCH option for every job, verbatim (repeatable), e.g. --sbatch=--qos=long
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    extra: Vec<String>,
    /// The saddlescope binary the jobs run [default: this one]
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

/// Flags `slurm` sets itself on every shard (the first three for every command).
const SET_PER_SHARD: [&str; 4] = ["--out", "--shard", "--resume", "--landscape"];

impl SlurmAnalyzeArgs {
    /// The jobs these flags ask for, the analyze arguments parsed and checked as `analyze`
    /// checks them (except that no device is opened).
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<ShardedJobs> {
        check_counts(self.shards, &self.resources)?;
        let parsed: AnalyzeCommandLine = shard_command_line(
            &self.analyze,
            &SET_PER_SHARD,
            "analyze",
            " (and --landscape needs the merged analysis)",
        )?;
        parsed.args.params()?;
        let gpu = parsed.args.uses_gpu();
        self.resources
            .jobs("analyze", self.shards, &self.analyze, &self.out, gpu)
    }
}

impl SlurmStudyArgs {
    /// The jobs these flags ask for, the study arguments parsed and checked as `study`
    /// checks them (except that no device is opened).
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<ShardedJobs> {
        check_counts(self.shards, &self.resources)?;
        let parsed: StudyCommandLine =
            shard_command_line(&self.study, &SET_PER_SHARD[..3], "study", "")?;
        parsed.args.plan()?;
        let gpu = parsed.args.uses_gpu();
        self.resources
            .jobs("study", self.shards, &self.study, &self.out, gpu)
    }
}

/// The arguments of `saddlescope NAME` that each shard runs, parsed as NAME parses them
/// with the flags each shard gets (`--out`, `--shard`); `forbidden` are the flags the
/// scripts set themselves (`why` says more).
///
/// # Errors
/// A usage error naming a forbidden flag or clap's complaint.
fn shard_command_line<P: Parser>(
    words: &[String],
    forbidden: &[&str],
    name: &str,
    why: &str,
) -> anyhow::Result<P> {
    if let Some(flag) = first_forbidden(words, forbidden) {
        return Err(usage(format!(
            "{flag} among the {name} arguments: `slurm {name}` sets --out, --shard and --resume for each shard itself{why}"
        )));
    }
    let argv: Vec<String> = words
        .iter()
        .cloned()
        .chain(["--out", "OUT", "--shard", "1/1"].map(String::from))
        .collect();
    P::try_parse_from(&argv)
        .map_err(|err| usage(format!("{name} arguments: {}", clap_line(&err, &argv))))
}

/// Checks the counts every job array needs.
fn check_counts(shards: usize, resources: &ResourceArgs) -> anyhow::Result<()> {
    if shards == 0 {
        return Err(usage("--shards 0: need at least 1"));
    }
    if resources.cpus_per_task == 0 {
        return Err(usage("--cpus-per-task 0: need at least 1"));
    }
    Ok(())
}

impl ResourceArgs {
    /// The job array of `shards` runs of `saddlescope NAME ARGS` merged into `out`.
    fn jobs(
        &self,
        name: &str,
        shards: usize,
        args: &[String],
        out: &std::path::Path,
        gpu: bool,
    ) -> anyhow::Result<ShardedJobs> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        };
        Ok(ShardedJobs {
            name: name.into(),
            shards,
            workdir: std::env::current_dir()?,
            binary,
            args: args.to_vec(),
            out: out.to_path_buf(),
            resources: Resources {
                partition: self.partition.clone(),
                account: self.account.clone(),
                time: self.time.clone(),
                cpus_per_task: self.cpus_per_task,
                mem: self.mem.clone(),
                gres: gpu.then(|| self.gres.clone()),
                extra: self.extra.clone(),
            },
        })
    }
}

/// Runs `saddlescope slurm`.
pub fn run(args: SlurmArgs) -> anyhow::Result<ExitCode> {
    let jobs = match args.command {
        SlurmCommand::Analyze(analyze) => analyze.validate()?,
        SlurmCommand::Study(study) => study.validate()?,
    };
    let scripts = jobs.write()?;
    for script in &scripts {
        println!("{}", script.path.display());
    }
    eprintln!(
        "submit with: bash {}",
        jobs.script_dir().join("submit.sh").display()
    );
    Ok(ExitCode::SUCCESS)
}
