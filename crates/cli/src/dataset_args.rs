//! The data-set flags shared by every command that loads data (`data summary` now; `train`
//! and `analyze` flatten [`DatasetArgs`] in too), and their validation into the data crate's
//! types: raw strings are parsed here, so that a bad `--dataset` or `--ratio` fails as a
//! usage error (exit 2) before any file is read.

use clap::Args;
use saddlescope_data::{Dataset, DatasetSpec, GroupRule, Imbalance, LongTailConfig, LongTailed};

use crate::usage::usage;

/// `--imbalance` and `--ratio`: the shape of a long-tailed profile.
#[derive(Debug, Clone, Args)]
pub struct ImbalanceArgs {
    /// Long-tail profile: exp (n_i = floor(n_max * (1/ratio)^(i/(C-1))), class 0 the head),
    /// step (the first floor(C/2) classes keep n_max, the rest floor(n_max/ratio)) or none
    /// (every class n_max)
    #[arg(long, value_name = "exp|step|none", default_value = "exp")]
    pub imbalance: String,

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
    /// The parsed profile and ratio.
    ///
    /// # Errors
    /// A usage error naming `--imbalance` or `--ratio`.
    pub fn validate(&self) -> anyhow::Result<(Imbalance, f64)> {
        let imbalance = self.imbalance.parse().map_err(data_error)?;
        saddlescope_data::check_ratio(self.ratio).map_err(data_error)?;
        Ok((imbalance, self.ratio))
    }
}

/// Which data set, and how to make it long-tailed.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Data set: mnist10k (embedded), mnist:DIR (IDX files, also Fashion-MNIST), cifar10:DIR,
    /// cifar100:DIR (binary versions) or synthetic:classes=K,dim=D,n=N,test=T,seed=S,sep=X
    /// (Gaussian mixture, every key optional)
    #[arg(long, value_name = "SPEC", default_value = "mnist10k")]
    pub dataset: String,

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
    pub groups: String,
}

impl DatasetArgs {
    /// The parsed spec and long-tail settings; reads no data.
    ///
    /// # Errors
    /// A usage error naming the bad flag.
    pub fn validate(&self) -> anyhow::Result<(DatasetSpec, LongTailConfig)> {
        let spec = self.dataset.parse().map_err(data_error)?;
        let (imbalance, ratio) = self.imbalance.validate()?;
        let groups: GroupRule = self.groups.parse().map_err(data_error)?;
        let config = LongTailConfig {
            imbalance,
            ratio,
            n_max: self.n_max,
            seed: self.seed,
            groups,
        };
        Ok((spec, config))
    }

    /// Loads the data set and applies the imbalance: the long-tailed setting and the data
    /// set whose train split is the selected subset (the test split stays whole).
    ///
    /// # Errors
    /// Usage errors for bad flags (including an `--n-max`/`--ratio` that leaves a class empty
    /// or asks for more samples than a class has); data errors naming the file.
    pub fn load(&self) -> anyhow::Result<(LongTailed, Dataset)> {
        let (spec, config) = self.validate()?;
        let dataset = Dataset::load(&spec).map_err(data_error)?;
        let long_tailed = LongTailed::new(&dataset, &config).map_err(data_error)?;
        let dataset = long_tailed.apply(dataset).map_err(data_error)?;
        Ok((long_tailed, dataset))
    }
}

/// A data-crate error as an exit-2 usage error when it is about a flag, else as is (exit 1).
pub fn data_error(err: saddlescope_data::Error) -> anyhow::Error {
    if err.is_usage() {
        usage(err.to_string())
    } else {
        anyhow::Error::new(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::UsageError;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        data: DatasetArgs,
    }

    fn parse(args: &[&str]) -> DatasetArgs {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
            .unwrap()
            .data
    }

    fn usage_message(result: anyhow::Result<impl std::fmt::Debug>) -> String {
        let err = result.unwrap_err();
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
        let (lt, data) = args.load().unwrap();
        assert_eq!(lt.train_counts, [20, 20, 6, 6]);
        assert_eq!(data.train().class_counts(), [20, 20, 6, 6]);
        assert_eq!(data.test().len(), 400);
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let msg = usage_message(parse(&["--ratio", "0.5"]).validate());
        assert_eq!(
            msg,
            "--ratio 0.5 must be a number of at least 1 (n_max / n_min)"
        );
        let msg = usage_message(parse(&["--ratio", "-2"]).validate());
        assert!(msg.starts_with("--ratio -2 "), "{msg}");
        let msg = usage_message(parse(&["--imbalance", "linear"]).validate());
        assert!(msg.contains("--imbalance"), "{msg}");
        let msg = usage_message(parse(&["--dataset", "imagenet"]).validate());
        assert!(
            msg.starts_with("unknown data set `imagenet` for --dataset"),
            "{msg}"
        );
        let msg = usage_message(parse(&["--groups", "halves"]).validate());
        assert!(msg.contains("--groups"), "{msg}");
        let msg = usage_message(parse(&["--ratio", "1000", "--n-max", "50"]).load());
        assert!(msg.contains("leaves class"), "{msg}");
        let msg = usage_message(parse(&["--n-max", "900", "--imbalance", "none"]).load());
        assert!(msg.starts_with("--n-max 900 asks class 0 for 900"), "{msg}");
    }

    #[test]
    fn missing_data_is_not_a_usage_error() {
        let err = parse(&["--dataset", "cifar10:/nonexistent/dir"])
            .load()
            .unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_none());
        assert_eq!(format!("{err:#}"), "/nonexistent/dir: no such directory");
    }
}
