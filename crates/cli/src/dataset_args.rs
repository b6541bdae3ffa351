//! The data-set flags shared by every command that loads data (`data summary`, and
//! `analyze` for foreign checkpoints), and their validation into the data crate's types:
//! the spec and the group rule are parsed by clap, the numbers checked here, so that a bad
//! `--dataset` or `--ratio` fails as a usage error (exit 2) before any file is read.

use clap::Args;
use saddlescope_data::{Dataset, DatasetSpec, GroupRule, Imbalance, LongTailConfig, LongTailed};

use crate::error::ResultExt;
use crate::values::ImbalanceArg;

/// `--imbalance` and `--ratio`: the shape of a long-tailed profile.
#[derive(Debug, Clone, Args)]
pub struct ImbalanceArgs {
    /// Long-tail profile: exp (n_i = floor(n_max * (1/ratio)^(i/(C-1))), class 0 the head),
    /// step (the first floor(C/2) classes keep n_max, the rest floor(n_max/ratio)) or none
    /// (every class n_max)
    #[arg(long, value_enum, default_value_t = ImbalanceArg::Exp)]
    pub imbalance: ImbalanceArg,

    /// Imbalance ratio n_max / n_min, at least 1
    #[arg(
        long,
        value_name = "R",
        default_value_t = 100.0,
        allow_negative_numbers = true
    )]
    pub ratio: f64,
}

impl ImbalanceArgs {
    /// The profile and the checked ratio.
    ///
    /// # Errors
    /// A usage error naming `--ratio`.
    pub fn validate(&self) -> anyhow::Result<(Imbalance, f64)> {
        saddlescope_data::check_ratio(self.ratio).cli()?;
        Ok((self.imbalance.into(), self.ratio))
    }
}

/// Which data set, and how to make it long-tailed.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Data set: mnist10k (embedded), mnist:DIR (IDX files, also Fashion-MNIST), cifar10:DIR,
    /// cifar100:DIR (binary versions) or synthetic:classes=K,dim=D,n=N,test=T,seed=S,sep=X
    /// (Gaussian mixture, every key optional)
    #[arg(long, value_name = "SPEC", default_value = "mnist10k")]
    pub dataset: DatasetSpec,

    #[command(flatten)]
    pub imbalance: ImbalanceArgs,

    /// Head-class train count [default: the smallest per-class train count of the data set]
    #[arg(long, value_name = "N")]
    pub n_max: Option<usize>,

    /// Seed of the per-class subset selection
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Head/medium/tail groups: thirds (classes by train count, head first; C=10 -> 4/3/3)
    /// or counts:MANY,FEW (head if count > MANY, tail if count < FEW)
    #[arg(long, value_name = "RULE", default_value = "thirds")]
    pub groups: GroupRule,
}

impl DatasetArgs {
    /// The spec and long-tail settings, checked; reads no data.
    ///
    /// # Errors
    /// A usage error naming the bad flag.
    pub fn validate(&self) -> anyhow::Result<(DatasetSpec, LongTailConfig)> {
        let (imbalance, ratio) = self.imbalance.validate()?;
        let config = LongTailConfig {
            imbalance,
            ratio,
            n_max: self.n_max,
            seed: self.seed,
            groups: self.groups,
        };
        Ok((self.dataset.clone(), config))
    }
}

/// A data error as the command line reports it, a missing data directory named with the
/// flag that points elsewhere: a preset's or a checkpoint's recorded location is where a new
/// user trips.
pub fn with_dataset_hint(err: saddlescope_data::Error, spec: &DatasetSpec) -> anyhow::Error {
    match &err {
        saddlescope_data::Error::MissingDir { path } => anyhow::anyhow!(
            "--dataset {spec}: {} does not exist; put the data set there or point --dataset at it (e.g. --dataset cifar10:DIR)",
            path.display()
        ),
        _ => crate::error::cli_error(err),
    }
}

/// Loads the data set and applies the imbalance: the long-tailed setting and the data set
/// whose train split is the selected subset (the test split stays whole).
///
/// # Errors
/// Usage errors for an `--n-max`/`--ratio` that leaves a class empty or asks for more
/// samples than a class has; data errors naming the file.
pub fn load_long_tailed(
    spec: &DatasetSpec,
    config: &LongTailConfig,
) -> anyhow::Result<(LongTailed, Dataset)> {
    let dataset = Dataset::load(spec).cli()?;
    let long_tailed = LongTailed::new(&dataset, config).cli()?;
    let dataset = long_tailed.apply(dataset).cli()?;
    Ok((long_tailed, dataset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{clap_line, UsageError};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        data: DatasetArgs,
    }

    fn try_parse(args: &[&str]) -> Result<DatasetArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).map(|p| p.data)
    }

    fn parse(args: &[&str]) -> DatasetArgs {
        try_parse(args).unwrap()
    }

    fn load(args: &DatasetArgs) -> anyhow::Result<(LongTailed, Dataset)> {
        let (spec, config) = args.validate()?;
        load_long_tailed(&spec, &config)
    }

    /// The one-line usage message of flags that fail, whether clap rejects them while
    /// parsing or validation or loading does.
    fn usage_message(args: &[&str]) -> String {
        let args = match try_parse(args) {
            Ok(args) => args,
            Err(err) => {
                assert!(err.use_stderr(), "{err}");
                return clap_line(&err, &[]);
            }
        };
        let err = load(&args).unwrap_err();
        assert!(
            err.downcast_ref::<UsageError>().is_some(),
            "not a usage error: {err:#}"
        );
        err.to_string()
    }

    #[test]
    fn defaults_validate_to_the_paper_setting() {
        let (spec, config) = parse(&[]).validate().unwrap();
        assert_eq!(spec, DatasetSpec::Mnist10k);
        assert_eq!(config, LongTailConfig::default());
    }

    #[test]
    fn flags_validate_into_data_types() {
        let args = parse(&[
            "--dataset",
            "synthetic:classes=4,n=30",
            "--imbalance",
            "step",
            "--ratio",
            "3",
            "--n-max",
            "20",
            "--seed",
            "5",
            "--groups",
            "counts:10,5",
        ]);
        let (spec, config) = args.validate().unwrap();
        assert_eq!(
            spec.to_string(),
            "synthetic:classes=4,dim=20,n=30,test=100,seed=0,sep=3"
        );
        assert_eq!(config.imbalance, Imbalance::Step);
        assert_eq!(
            (config.ratio, config.n_max, config.seed),
            (3.0, Some(20), 5)
        );
        assert_eq!(config.groups, GroupRule::Counts { many: 10, few: 5 });
        let (lt, data) = load(&args).unwrap();
        assert_eq!(lt.train_counts, [20, 20, 6, 6]);
        assert_eq!(data.train().class_counts(), [20, 20, 6, 6]);
        assert_eq!(data.test().len(), 400);
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let msg = usage_message(&["--ratio", "0.5"]);
        assert_eq!(
            msg,
            "--ratio 0.5 must be a number of at least 1 (n_max / n_min)"
        );
        let msg = usage_message(&["--ratio", "-2"]);
        assert!(msg.starts_with("--ratio -2 "), "{msg}");
        let msg = usage_message(&["--imbalance", "linear"]);
        assert!(msg.contains("--imbalance"), "{msg}");
        let msg = usage_message(&["--dataset", "imagenet"]);
        assert!(
            msg.starts_with("unknown data set `imagenet` for --dataset"),
            "{msg}"
        );
        let msg = usage_message(&["--groups", "halves"]);
        assert!(msg.contains("--groups"), "{msg}");
        let msg = usage_message(&["--ratio", "1000", "--n-max", "50"]);
        assert!(msg.contains("leaves class"), "{msg}");
        let msg = usage_message(&["--n-max", "900", "--imbalance", "none"]);
        assert!(msg.starts_with("--n-max 900 asks class 0 for 900"), "{msg}");
    }

    #[test]
    fn missing_data_is_not_a_usage_error() {
        let err = load(&parse(&["--dataset", "cifar10:/nonexistent/dir"])).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_none());
        assert_eq!(format!("{err:#}"), "/nonexistent/dir: no such directory");
    }
}
