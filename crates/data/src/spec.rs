//! The `--dataset` string every command takes. Its [`Display`](std::fmt::Display) form parses
//! back to the same spec, because checkpoints record it and analysis rebuilds the data from it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::synthetic::SyntheticSpec;

/// The accepted forms, for messages and `--help`.
pub const ACCEPTED_FORMS: &str = "mnist10k, mnist:DIR, cifar10:DIR, cifar100:DIR or \
     synthetic:classes=K,dim=D,n=N,test=T,seed=S,sep=X";

/// Which data set to load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DatasetSpec {
    /// `mnist10k`: the 10,000 MNIST digits embedded in the binary (8,000 train, 2,000 test).
    Mnist10k,
    /// `mnist:DIR`: IDX files `train-images-idx3-ubyte[.gz]` etc. in DIR (MNIST, Fashion-MNIST).
    Mnist(PathBuf),
    /// `cifar10:DIR`: `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin` in DIR.
    Cifar10(PathBuf),
    /// `cifar100:DIR`: `train.bin`, `test.bin` in DIR.
    Cifar100(PathBuf),
    /// `synthetic:classes=10,dim=20,n=500,test=100,seed=0,sep=3` (every key optional).
    Synthetic(SyntheticSpec),
}

impl DatasetSpec {
    /// Whether training uses the random-crop + flip augmentation by default: CIFAR, as in the
    /// reference code; not MNIST (digits are not mirror-symmetric) nor synthetic vectors.
    pub fn augments(&self) -> bool {
        matches!(self, DatasetSpec::Cifar10(_) | DatasetSpec::Cifar100(_))
    }
}

impl FromStr for DatasetSpec {
    type Err = Error;

    /// Parses one of [`ACCEPTED_FORMS`].
    ///
    /// # Errors
    /// [`Error::UnknownSpec`] for an unknown form, [`Error::BadSpec`] for an empty directory or
    /// a bad synthetic parameter.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let dir = |d: &str| {
            if d.is_empty() {
                Err(bad("the directory is empty"))
            } else {
                Ok(PathBuf::from(d))
            }
        };
        match s.split_once(':') {
            None if s == "mnist10k" => Ok(DatasetSpec::Mnist10k),
            None if s == "synthetic" => Ok(DatasetSpec::Synthetic(SyntheticSpec::default())),
            Some(("mnist", d)) => dir(d).map(DatasetSpec::Mnist),
            Some(("cifar10", d)) => dir(d).map(DatasetSpec::Cifar10),
            Some(("cifar100", d)) => dir(d).map(DatasetSpec::Cifar100),
            Some(("synthetic", params)) => SyntheticSpec::parse_params(params)
                .map(DatasetSpec::Synthetic)
                .map_err(|reason| bad(&reason)),
            _ => Err(Error::UnknownSpec {
                spec: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Mnist10k => f.write_str("mnist10k"),
            DatasetSpec::Mnist(dir) => write!(f, "mnist:{}", dir.display()),
            DatasetSpec::Cifar10(dir) => write!(f, "cifar10:{}", dir.display()),
            DatasetSpec::Cifar100(dir) => write!(f, "cifar100:{}", dir.display()),
            DatasetSpec::Synthetic(params) => write!(f, "synthetic:{params}"),
        }
    }
}

impl From<DatasetSpec> for String {
    fn from(spec: DatasetSpec) -> String {
        spec.to_string()
    }
}

impl TryFrom<String> for DatasetSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_and_round_trip() {
        for s in [
            "mnist10k",
            "mnist:data/fashion",
            "cifar10:/tmp/c10",
            "cifar100:rel/dir:with:colons",
            "synthetic:classes=4,dim=2,n=30,test=9,seed=11,sep=1.5",
        ] {
            let spec: DatasetSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
            assert_eq!(spec.to_string().parse::<DatasetSpec>().unwrap(), spec);
        }
        let short: DatasetSpec = "synthetic:classes=10,dim=20,n=500,seed=0".parse().unwrap();
        assert_eq!(short, DatasetSpec::Synthetic(SyntheticSpec::default()));
        assert_eq!("synthetic".parse::<DatasetSpec>().unwrap(), short);
        assert_eq!(
            short.to_string(),
            "synthetic:classes=10,dim=20,n=500,test=100,seed=0,sep=3"
        );
        assert_eq!(
            "cifar100:rel/dir:with:colons"
                .parse::<DatasetSpec>()
                .unwrap(),
            DatasetSpec::Cifar100("rel/dir:with:colons".into())
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let spec: DatasetSpec = "synthetic:sep=0.1".parse().unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            "\"synthetic:classes=10,dim=20,n=500,test=100,seed=0,sep=0.1\""
        );
        assert_eq!(serde_json::from_str::<DatasetSpec>(&json).unwrap(), spec);
        assert!(serde_json::from_str::<DatasetSpec>("\"imagenet\"").is_err());
    }

    #[test]
    fn unknown_and_bad_specs_are_usage_errors() {
        let err = "imagenet:/data".parse::<DatasetSpec>().unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "unknown data set `imagenet:/data` for dataset: expected mnist10k, mnist:DIR, \
             cifar10:DIR, cifar100:DIR or synthetic:classes=K,dim=D,n=N,test=T,seed=S,sep=X"
        );
        assert!(matches!(
            "mnist".parse::<DatasetSpec>(),
            Err(Error::UnknownSpec { .. })
        ));
        assert!(matches!(
            "mnist10k:x".parse::<DatasetSpec>(),
            Err(Error::UnknownSpec { .. })
        ));
        let err = "cifar10:".parse::<DatasetSpec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad data set `cifar10:` for dataset: the directory is empty"
        );
        let err = "synthetic:classes=0".parse::<DatasetSpec>().unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "bad data set `synthetic:classes=0` for dataset: `classes` must be at least 1"
        );
    }

    #[test]
    fn only_cifar_augments() {
        assert!(DatasetSpec::Cifar10("d".into()).augments());
        assert!(DatasetSpec::Cifar100("d".into()).augments());
        assert!(!DatasetSpec::Mnist10k.augments());
        assert!(!DatasetSpec::Synthetic(SyntheticSpec::default()).augments());
    }
}
