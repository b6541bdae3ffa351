//! `saddlescope slurm`: writes ready-to-submit Slurm scripts for a sharded command (a job
//! array of shards, the merge as a dependent job, `submit.sh`; see [`crate::slurm`]). The
//! command's own flags are checked here, so that a typo fails now and not in the queue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cmd_analyze::AnalyzeArgs;
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

/// The analyze arguments as `saddlescope analyze` parses them.
#[derive(Debug, Parser)]
#[command(name = "analyze", no_binary_name = true)]
struct AnalyzeCommandLine {
    #[command(flatten)]
    args: AnalyzeArgs,
}

/// Flags `slurm` sets itself on every shard.
const SET_PER_SHARD: [&str; 4] = ["--out", "--shard", "--resume", "--landscape"];

impl SlurmAnalyzeArgs {
    /// The jobs these flags ask for, the analyze arguments parsed and checked as `analyze`
    /// checks them (except that no device is opened).
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<ShardedJobs> {
        if self.shards == 0 {
            return Err(usage("--shards 0: need at least 1"));
        }
        if self.resources.cpus_per_task == 0 {
            return Err(usage("--cpus-per-task 0: need at least 1"));
        }
        if let Some(flag) = self.analyze.iter().find_map(|word| {
            SET_PER_SHARD
                .into_iter()
                .find(|flag| word == flag || word.starts_with(&format!("{flag}=")))
        }) {
            return Err(usage(format!(
                "{flag} among the analyze arguments: `slurm analyze` sets --out, --shard and --resume for each shard itself (and --landscape needs the merged analysis)"
            )));
        }
        // Parsed and checked as `analyze` does, with the flags each shard gets.
        let argv: Vec<String> = self
            .analyze
            .iter()
            .cloned()
            .chain(["--out", "OUT", "--shard", "1/1"].map(String::from))
            .collect();
        let parsed = AnalyzeCommandLine::try_parse_from(&argv)
            .map_err(|err| usage(format!("analyze arguments: {}", clap_line(&err, &argv))))?;
        parsed.args.params()?;
        let gpu = parsed.args.uses_gpu();
        let r = &self.resources;
        let binary = match &r.binary {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        };
        Ok(ShardedJobs {
            name: "analyze".into(),
            shards: self.shards,
            workdir: std::env::current_dir()?,
            binary,
            args: self.analyze.clone(),
            out: self.out.clone(),
            resources: Resources {
                partition: r.partition.clone(),
                account: r.account.clone(),
                time: r.time.clone(),
                cpus_per_task: r.cpus_per_task,
                mem: r.mem.clone(),
                gres: gpu.then(|| r.gres.clone()),
                extra: r.extra.clone(),
            },
        })
    }
}

/// Runs `saddlescope slurm`.
pub fn run(args: SlurmArgs) -> anyhow::Result<ExitCode> {
    let SlurmCommand::Analyze(analyze) = args.command;
    let jobs = analyze.validate()?;
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
