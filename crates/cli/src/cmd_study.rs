//! `saddlescope study`: the paper's experiment over recipes × seeds. Each cell (arm, seed)
//! is a training run and its class-wise analysis in a directory of its own; the study
//! aggregates them into means with bootstrap intervals and judges the paper's two claims
//! (`saddlescope_results::aggregate`). The flags are checked here, every arm's train flags
//! and the analyze flags included, before anything is read or trained.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Parser};
use saddlescope_nn::ModelSpec;
use saddlescope_results::{Shard, StudyArm, StudyDesign};

use crate::cmd_analyze::AnalyzeCommandLine;
use crate::cmd_train::TrainCommandLine;
use crate::error::{clap_line, usage};
use crate::jobs::study::{study, StudyJob, StudyKind};
use crate::values::DeviceArg;

/// The analysis of every cell unless `--analyze-args` says otherwise: f32 HVPs (the
/// verdicts and ratios need no certified f64 bounds; `--dtype f64` gives them) with a
/// tolerance f32 can reach (its residual bounds are ~1e-5 of ‖H‖) and at most 200 HVPs for
/// the extremes, 256 samples per class (every tail class whole: MNIST-LT's smallest has 10),
/// 60 Lanczos steps x 2 probes. Measured on a shared 2-core machine: about 250 s of CPU per
/// CNN cell (8 epochs and its analysis), so the default 10 cells of 30 epochs take about
/// 2,800 s of CPU: 25 minutes on 2 busy cores, within the 45 minutes the study is budgeted.
pub const DEFAULT_ANALYZE_ARGS: &str = "--dtype f32 --samples-per-class 256 --lanczos-steps 60 --probes 2 --tol 1e-4 --max-applications 200";

/// Flags of `saddlescope study`.
#[derive(Debug, Args)]
#[command(
    after_help = "Layout of OUT: cells/ARM/seed-S/run (the training run), \
cells/ARM/seed-S/analysis (its analysis), cells/ARM/seed-S/cell.json (what the study keeps of \
the cell, written once both are done); study.json (means and 95% bootstrap intervals over seeds \
per arm, group and class; paired differences of every arm against the first; the paper's two \
claims with their criteria and conclusions), study.csv (every interval), cells.csv (every \
cell's per-class numbers), figures/, report.md and report.html. The same command again skips \
finished cells and continues an interrupted one; other settings in OUT are refused unless \
--force. With --shard I/N: only shard I's cells and OUT/study-shard.json; `saddlescope merge` \
aggregates the shards (see `saddlescope slurm study`).\n\
Example: saddlescope study --out studies/mnist --seeds 0-2 --epochs 10 \
--arm 'ce-drw=mnist-lt-ce-drw' --arm 'sam-0.1=mnist-lt-ce-drw-sam --sam 0.1'"
)]
pub struct StudyArgs {
    /// Output directory of the study
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A recipe: NAME=PRESET, then train flags that override the preset, in one argument
    /// (repeatable; the first arm is the reference the others are compared with) [default:
    /// ce-drw=mnist-lt-ce-drw and ce-drw-sam=mnist-lt-ce-drw-sam]
    #[arg(long = "arm", value_name = "NAME=PRESET [FLAGS]")]
    arms: Vec<ArmSpec>,
    /// Seeds of every arm (training and probe vectors): numbers and ranges, e.g. 0-4 or 0,3,7
    #[arg(long, value_name = "LIST", default_value = "0-4")]
    seeds: SeedList,
    /// Architecture of every arm that sets no --model itself
    #[arg(long, value_name = "SPEC", default_value = "cnn")]
    model: ModelSpec,
    /// Epochs of every arm that sets no --epochs itself [default: the presets']
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// The analyze flags of every cell, in one argument (not --out, --seed, --shard,
    /// --class-ids, --landscape, --device or a foreign checkpoint's flags)
    #[arg(long, value_name = "FLAGS", default_value = DEFAULT_ANALYZE_ARGS, allow_hyphen_values = true)]
    analyze_args: String,
    /// Run only shard I of N of the cells (1 <= I <= N, e.g. $SLURM_ARRAY_TASK_ID/N); give
    /// each shard its own --out; `saddlescope merge` aggregates them
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Where tensors live, for training and analysis (cuda needs a build with --features cuda)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Replace a study of other settings in OUT (its cells, results and report are removed),
    /// and take over a lock another host left on the directory
    #[arg(long)]
    force: bool,
    /// No progress output
    #[arg(long)]
    quiet: bool,
    /// Accepted for job scripts: the same command again always continues
    #[arg(long = "resume", hide = true)]
    _resume: bool,
}

/// `--arm NAME=PRESET [FLAGS]`, split but not yet checked against `train`'s flags.
#[derive(Debug, Clone)]
pub struct ArmSpec {
    /// The arm's name (a directory name).
    pub name: String,
    /// The preset.
    pub preset: String,
    /// The train flags after it.
    pub flags: Vec<String>,
}

impl FromStr for ArmSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, recipe) = text.split_once('=').ok_or(
            "expected NAME=PRESET [TRAIN FLAGS], e.g. 'sam=mnist-lt-ce-drw-sam --sam 0.1'",
        )?;
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-+".contains(c);
        if name.is_empty() || !name.chars().all(plain) || name.starts_with('.') {
            return Err(format!(
                "arm name {name:?}: use letters, digits and . _ - + (it names the cells' directories)"
            ));
        }
        let mut words = recipe.split_whitespace().map(String::from);
        let preset = words
            .next()
            .ok_or_else(|| format!("arm {name}: no preset after '='"))?;
        Ok(Self {
            name: name.to_string(),
            preset,
            flags: words.collect(),
        })
    }
}

/// The arms of the paper's MNIST-LT comparison.
pub fn default_arms() -> Vec<ArmSpec> {
    ["ce-drw=mnist-lt-ce-drw", "ce-drw-sam=mnist-lt-ce-drw-sam"]
        .map(|text| text.parse().expect("default arms parse"))
        .to_vec()
}

/// `--seeds`: numbers and inclusive ranges, in the order given, without repeats.
#[derive(Debug, Clone)]
pub struct SeedList(pub Vec<u64>);

impl FromStr for SeedList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut seeds: Vec<u64> = Vec::new();
        for item in text.split(',') {
            let bad = || format!("{item:?}: expected a seed or a range A-B, e.g. 0-4 or 0,3,7");
            let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
            let range = match item.split_once('-') {
                Some((a, b)) => number(a)?..=number(b)?,
                None => number(item)?..=number(item)?,
            };
            if range.is_empty() {
                return Err(bad());
            }
            for seed in range {
                if seeds.contains(&seed) {
                    return Err(format!("seed {seed} is given twice"));
                }
                if seeds.len() == 1000 {
                    return Err("more than 1000 seeds".into());
                }
                seeds.push(seed);
            }
        }
        Ok(Self(seeds))
    }
}

/// Train flags a study sets for each cell itself.
const SET_PER_CELL_TRAIN: [&str; 7] = [
    "--out", "--resume", "--seed", "--force", "--quiet", "--device", "--preset",
];

/// Analyze flags a study sets for each cell itself, or that do not fit a study's own
/// checkpoints.
const SET_PER_CELL_ANALYZE: [&str; 17] = [
    "--out",
    "--seed",
    "--shard",
    "--resume",
    "--force",
    "--quiet",
    "--landscape",
    "--class-ids",
    "--threads",
    "--device",
    "--dataset",
    "--split",
    "--arch",
    "--classes",
    "--data-seed",
    "--imbalance",
    "--ratio",
];

/// The first word of `words` that is one of `flags` (as `--flag` or `--flag=...`).
pub fn first_forbidden<'a>(words: &[String], flags: &[&'a str]) -> Option<&'a str> {
    words.iter().find_map(|word| {
        flags
            .iter()
            .copied()
            .find(|flag| word == flag || word.starts_with(&format!("{flag}=")))
    })
}

/// The arms, each recipe checked as `train` checks its flags.
pub fn arm_recipes(
    arms: &[ArmSpec],
    model: &ModelSpec,
    epochs: Option<usize>,
) -> anyhow::Result<(Vec<StudyArm>, Vec<saddlescope_train::TrainConfig>)> {
    let mut names: Vec<&str> = Vec::new();
    let mut design = Vec::new();
    let mut recipes = Vec::new();
    for arm in arms {
        if names.contains(&arm.name.as_str()) {
            return Err(usage(format!(
                "--arm {}: the name is given twice",
                arm.name
            )));
        }
        names.push(&arm.name);
        if let Some(flag) = first_forbidden(&arm.flags, &SET_PER_CELL_TRAIN) {
            return Err(usage(format!(
                "--arm {}: {flag} among its train flags; the study sets --out, --seed and --device for each cell itself (--seeds, --out, --device)",
                arm.name
            )));
        }
        let argv: Vec<String> = ["--preset".to_string(), arm.preset.clone()]
            .into_iter()
            .chain(arm.flags.iter().cloned())
            .chain(["--out".to_string(), "OUT".to_string()])
            .collect();
        let parsed = TrainCommandLine::try_parse_from(&argv)
            .map_err(|err| usage(format!("--arm {}: {}", arm.name, clap_line(&err, &argv))))?;
        let config = parsed
            .args
            .study_recipe(model, epochs)
            .map_err(|err| usage(format!("--arm {}: {err:#}", arm.name)))?;
        // The recipe as `train` would be told it, the study's --model and --epochs included.
        let mut words: Vec<String> = std::iter::once(arm.preset.clone())
            .chain(arm.flags.iter().cloned())
            .collect();
        if first_forbidden(&arm.flags, &["--model"]).is_none() {
            words.extend(["--model".to_string(), model.to_string()]);
        }
        if let (Some(n), None) = (epochs, first_forbidden(&arm.flags, &["--epochs"])) {
            words.extend(["--epochs".to_string(), n.to_string()]);
        }
        let recipe = words.join(" ");
        design.push(StudyArm {
            name: arm.name.clone(),
            recipe,
            sam: config.sam.is_some(),
        });
        recipes.push(config);
    }
    Ok((design, recipes))
}

/// The analysis settings of `--analyze-args`, checked as `analyze` checks its flags.
pub fn analysis_params(text: &str) -> anyhow::Result<saddlescope_analysis::AnalyzeParams> {
    let words: Vec<String> = text.split_whitespace().map(String::from).collect();
    if let Some(flag) = first_forbidden(&words, &SET_PER_CELL_ANALYZE) {
        return Err(usage(format!(
            "--analyze-args: {flag} does not belong there; the study analyses each cell's own checkpoint on its training split, with the cell's seed, into the cell's directory"
        )));
    }
    let argv: Vec<String> = std::iter::once("CHECKPOINT".to_string())
        .chain(words)
        .chain(["--out".to_string(), "OUT".to_string()])
        .collect();
    let parsed = AnalyzeCommandLine::try_parse_from(&argv)
        .map_err(|err| usage(format!("--analyze-args: {}", clap_line(&err, &argv))))?;
    parsed
        .args
        .params()
        .map_err(|err| usage(format!("--analyze-args: {err:#}")))
}

impl StudyArgs {
    /// The grid, the arms' recipes and the analysis settings, checked; neither the device
    /// nor any file is opened (so that `saddlescope slurm study` can check a GPU job's
    /// flags on a machine without a GPU).
    ///
    /// # Errors
    /// Usage errors naming the flag.
    pub fn plan(
        &self,
    ) -> anyhow::Result<(
        StudyDesign,
        Vec<saddlescope_train::TrainConfig>,
        saddlescope_analysis::AnalyzeParams,
    )> {
        let arms = if self.arms.is_empty() {
            default_arms()
        } else {
            self.arms.clone()
        };
        let (design_arms, recipes) = arm_recipes(&arms, &self.model, self.epochs)?;
        let analysis = analysis_params(&self.analyze_args)?;
        let design = StudyDesign {
            arms: design_arms,
            seeds: self.seeds.0.clone(),
        };
        Ok((design, recipes, analysis))
    }

    /// Whether the study runs on a GPU (`--device cuda`).
    pub fn uses_gpu(&self) -> bool {
        self.device == DeviceArg::Cuda
    }

    /// The study these flags ask for, every flag checked; reads nothing.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<StudyJob> {
        let (design, recipes, analysis) = self.plan()?;
        let device = self.device.open()?;
        Ok(StudyJob {
            design,
            recipes,
            analysis,
            out: self.out.clone(),
            shard: self.shard,
            device,
            quiet: self.quiet,
            force: self.force,
            kind: StudyKind::Study,
        })
    }
}

/// Runs `saddlescope study`.
pub fn run(args: StudyArgs) -> anyhow::Result<ExitCode> {
    study(&args.validate()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_and_ranges() {
        assert_eq!(SeedList::from_str("0-4").unwrap().0, [0, 1, 2, 3, 4]);
        assert_eq!(SeedList::from_str("7,0-1").unwrap().0, [7, 0, 1]);
        assert!(SeedList::from_str("3-1").is_err());
        assert!(SeedList::from_str("0,0").unwrap_err().contains("twice"));
        assert!(SeedList::from_str("a").is_err());
        assert!(SeedList::from_str("").is_err());
    }

    #[test]
    fn arm_specs_and_their_flags_are_checked() {
        let arm: ArmSpec = "sam=mnist-lt-ce-drw-sam --sam 0.1 --epochs 3"
            .parse()
            .unwrap();
        assert_eq!(
            (arm.name.as_str(), arm.preset.as_str()),
            ("sam", "mnist-lt-ce-drw-sam")
        );
        assert_eq!(arm.flags, ["--sam", "0.1", "--epochs", "3"]);
        assert!("no-preset=".parse::<ArmSpec>().is_err());
        assert!("a/b=mnist-lt-ce".parse::<ArmSpec>().is_err());
        assert!("mnist-lt-ce".parse::<ArmSpec>().is_err());
        let cnn: ModelSpec = "cnn".parse().unwrap();
        let (design, recipes) = arm_recipes(std::slice::from_ref(&arm), &cnn, Some(10)).unwrap();
        assert!(design[0].sam);
        assert_eq!(
            design[0].recipe,
            "mnist-lt-ce-drw-sam --sam 0.1 --epochs 3 --model cnn"
        );
        // The arm's own --epochs wins; the study's model applies.
        assert_eq!(recipes[0].epochs, 3);
        assert_eq!(recipes[0].model, cnn);
        let err = |spec: &str| {
            arm_recipes(&[spec.parse().unwrap()], &cnn, None)
                .unwrap_err()
                .to_string()
        };
        assert!(err("x=mnist-lt-ce --seed 3").contains("--seed among its train flags"));
        assert!(err("x=nope").contains("--arm x:"), "{}", err("x=nope"));
        assert!(err("x=mnist-lt-ce --lr -1").starts_with("--arm x:"));
        assert!(err("x=mnist-lt-ce --bogus").starts_with("--arm x:"));
        let twice = arm_recipes(&[arm.clone(), arm], &cnn, None).unwrap_err();
        assert!(twice.to_string().contains("given twice"));
    }

    #[test]
    fn analyze_args_are_checked() {
        let p = analysis_params(DEFAULT_ANALYZE_ARGS).unwrap();
        assert_eq!(p.samples_per_class, Some(256));
        assert!(analysis_params("--seed 3")
            .unwrap_err()
            .to_string()
            .contains("--seed does not belong there"));
        assert!(analysis_params("--probes 0").is_err());
        assert!(analysis_params("--bogus")
            .unwrap_err()
            .to_string()
            .starts_with("--analyze-args:"));
    }
}
