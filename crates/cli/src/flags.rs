//! The one place that knows which flag sets which library parameter. Library errors name
//! parameters as the libraries do (`n_max`, `batch_size`, the spectral crate's `m`); the
//! command line reports the same errors with the flags the user typed.

use std::error::Error as StdError;

use saddlescope_analysis::Param as AnalysisParam;
use saddlescope_data::Param as DataParam;
use saddlescope_train::Param as TrainParam;

/// The flag of a data-crate parameter.
fn data_flag(param: DataParam) -> &'static str {
    match param {
        DataParam::Dataset => "--dataset",
        DataParam::Imbalance => "--imbalance",
        DataParam::Ratio => "--ratio",
        DataParam::NMax => "--n-max",
        DataParam::Classes => "--classes",
        DataParam::Groups => "--groups",
        // The data crate may name parameters no flag sets yet; its own name then.
        other => other.name(),
    }
}

/// The flag of a train-crate setting.
fn train_flag(param: TrainParam) -> &'static str {
    match param {
        TrainParam::Dataset => "--dataset",
        TrainParam::Ratio => "--ratio",
        TrainParam::Epochs => "--epochs",
        TrainParam::BatchSize => "--batch-size",
        TrainParam::Lr => "--lr",
        TrainParam::Momentum => "--momentum",
        TrainParam::WeightDecay => "--weight-decay",
        TrainParam::DrwEpoch => "--drw-epoch",
        TrainParam::SamRho => "--sam",
        TrainParam::SamFrom => "--sam-from",
        TrainParam::SamSchedule => "--sam-schedule",
        TrainParam::Dtype => "--dtype",
        other => other.name(),
    }
}

/// The flag of an analysis-crate setting.
fn analysis_flag(param: AnalysisParam) -> &'static str {
    match param {
        AnalysisParam::BatchSize => "--batch-size",
        AnalysisParam::SamplesPerClass => "--samples-per-class",
        AnalysisParam::SaddleRatio => "--saddle-ratio",
        AnalysisParam::MaxGradientRatio => "--max-gradient-ratio",
        AnalysisParam::MinSkill => "--min-skill",
        AnalysisParam::DivergedLossRatio => "--diverged-loss-ratio",
        AnalysisParam::ClassIds => "--class-ids",
        AnalysisParam::Loss => "--loss",
        AnalysisParam::Dataset => "--dataset",
        AnalysisParam::Class => "--class",
        AnalysisParam::Range => "--range",
        AnalysisParam::Points => "--points",
        AnalysisParam::PlanePoints => "--plane-points",
        AnalysisParam::Arch => "--arch",
        AnalysisParam::Classes => "--classes",
        other => other.name(),
    }
}

/// The flag of a spectral-crate parameter (`SpectrumParams` and its parts, by the names
/// its errors use), if a flag sets it: `steps` and the extreme solver's `basis_size` are
/// `--lanczos-steps`.
fn spectral_flag(name: &str) -> Option<&'static str> {
    Some(match name {
        "steps" | "basis_size" => "--lanczos-steps",
        "probes" => "--probes",
        "top_k" => "--top-k",
        "tol" => "--tol",
        "max_applications" => "--max-applications",
        _ => return None,
    })
}

/// The message of a library usage error with its parameters named by their flags, or
/// `None` when `err` is no usage error this table knows (it then reads as it is).
pub fn with_flags(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(e) = err.downcast_ref::<saddlescope_data::Error>() {
        return e.is_usage().then(|| e.describe(data_flag));
    }
    if let Some(e) = err.downcast_ref::<saddlescope_spectral::Error>() {
        return spectral(e);
    }
    if let Some(e) = err.downcast_ref::<saddlescope_train::Error>() {
        return train(e);
    }
    if let Some(e) = err.downcast_ref::<saddlescope_analysis::Error>() {
        return analysis(e);
    }
    None
}

fn spectral(err: &saddlescope_spectral::Error) -> Option<String> {
    let saddlescope_spectral::Error::InvalidParam {
        name,
        value,
        expected,
    } = err
    else {
        return None;
    };
    Some(format!(
        "{} {value}: expected {expected}",
        spectral_flag(name)?
    ))
}

fn train(err: &saddlescope_train::Error) -> Option<String> {
    use saddlescope_train::Error;
    Some(match err {
        Error::Invalid { param, reason } => format!("{}: {reason}", train_flag(*param)),
        Error::RunExists { dir } => format!(
            "--out: {0} already holds a run; continue it with --resume {0} or pick another directory",
            dir.display()
        ),
        Error::NothingToResume { .. } => format!("--resume: {err}"),
        Error::Data(e) => return with_flags(e),
        _ => return None,
    })
}

fn analysis(err: &saddlescope_analysis::Error) -> Option<String> {
    use saddlescope_analysis::Error;
    match err {
        Error::Invalid { param, reason } => Some(format!("{}: {reason}", analysis_flag(*param))),
        Error::Settings(e) => spectral(e),
        Error::Data(e) => with_flags(e),
        Error::Train(e) => train(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saddlescope_data::{class_counts, select, DatasetSpec, GroupRule, Imbalance};

    fn flagged(err: impl StdError + 'static) -> String {
        with_flags(&err).expect("a usage error")
    }

    /// The data crate's usage messages as the command line prints them (the same texts the
    /// data crate's tests assert with its parameter names).
    #[test]
    fn data_errors_name_the_flags() {
        assert_eq!(
            flagged(class_counts(Imbalance::Exp, 10, 5000, 0.5).unwrap_err()),
            "--ratio 0.5 must be a number of at least 1 (n_max / n_min)"
        );
        assert_eq!(
            flagged(class_counts(Imbalance::Exp, 10, 50, 1000.0).unwrap_err()),
            "--ratio 1000 with --n-max 50 leaves class 6 with 0 train samples"
        );
        assert_eq!(
            flagged(class_counts(Imbalance::Exp, 0, 5, 2.0).unwrap_err()),
            "--classes 0: need at least one class"
        );
        assert_eq!(
            flagged("linear".parse::<Imbalance>().unwrap_err()),
            "unknown imbalance `linear` for --imbalance: expected exp, step or none"
        );
        let labels: Vec<u32> = (0..60).map(|i| i % 3).collect();
        assert_eq!(
            flagged(select(&labels, &[21, 1, 1], 0).unwrap_err()),
            "--n-max 21 asks class 0 for 21 train samples, but it has only 20"
        );
        assert_eq!(
            flagged("imagenet:/data".parse::<DatasetSpec>().unwrap_err()),
            "unknown data set `imagenet:/data` for --dataset: expected mnist10k, mnist:DIR, \
             cifar10:DIR, cifar100:DIR or synthetic:classes=K,dim=D,n=N,test=T,seed=S,sep=X"
        );
        assert_eq!(
            flagged("cifar10:".parse::<DatasetSpec>().unwrap_err()),
            "bad data set `cifar10:` for --dataset: the directory is empty"
        );
        assert_eq!(
            flagged("synthetic:classes=0".parse::<DatasetSpec>().unwrap_err()),
            "bad data set `synthetic:classes=0` for --dataset: `classes` must be at least 1"
        );
        assert_eq!(
            flagged("halves".parse::<GroupRule>().unwrap_err()),
            "bad --groups `halves`: expected thirds or counts:MANY,FEW (e.g. counts:100,20)"
        );
        assert_eq!(
            flagged("counts:20,100".parse::<GroupRule>().unwrap_err()),
            "bad --groups `counts:20,100`: FEW must not exceed MANY + 1"
        );
        let missing = saddlescope_data::Error::MissingDir {
            path: "/nonexistent".into(),
        };
        assert_eq!(with_flags(&missing), None, "not a usage error");
    }

    /// The analysis crate's setting errors as the command line prints them (its own tests
    /// assert the same texts with the setting names).
    #[test]
    fn analysis_errors_name_the_flags() {
        use saddlescope_analysis::Error;
        let invalid = |param, reason: &str| Error::Invalid {
            param,
            reason: reason.into(),
        };
        assert_eq!(
            flagged(invalid(
                AnalysisParam::ClassIds,
                "class 7 does not exist (the checkpoint has 3 classes)"
            )),
            "--class-ids: class 7 does not exist (the checkpoint has 3 classes)"
        );
        assert_eq!(
            flagged(invalid(
                AnalysisParam::Points,
                "40: expected an odd number of at least 3 (t = 0 on the grid)"
            )),
            "--points: 40: expected an odd number of at least 3 (t = 0 on the grid)"
        );
        assert_eq!(
            flagged(invalid(
                AnalysisParam::Class,
                "class 3 does not exist (the checkpoint has 3 classes)"
            )),
            "--class: class 3 does not exist (the checkpoint has 3 classes)"
        );
        for (param, flag) in [
            (AnalysisParam::PlanePoints, "--plane-points: "),
            (AnalysisParam::Range, "--range: "),
            (AnalysisParam::Loss, "--loss: "),
        ] {
            assert!(flagged(invalid(param, "x")).starts_with(flag));
        }
        let settings = saddlescope_spectral::SpectrumParams {
            slq: saddlescope_spectral::SlqParams {
                probes: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = Error::Settings(settings.validate().unwrap_err());
        assert_eq!(flagged(err), "--probes 0: expected at least 1");
        let diverged = Error::NonFiniteLoss {
            class: 1,
            value: f64::NAN,
            point: "t = -1e300 along u_max".into(),
        };
        assert_eq!(with_flags(&diverged), None, "a numerical failure");
    }

    /// Spectral parameters map to the flags of `spectrum`, `analyze` and `landscape`; one no
    /// flag sets stays unmapped (and then is no usage error of the command line).
    #[test]
    fn spectral_errors_name_the_flags() {
        let param = |name, value: &str, expected: &str| saddlescope_spectral::Error::InvalidParam {
            name,
            value: value.into(),
            expected: expected.into(),
        };
        assert_eq!(
            flagged(param("top_k", "97", "at most steps - 4 = 96")),
            "--top-k 97: expected at most steps - 4 = 96"
        );
        assert_eq!(
            flagged(param("basis_size", "5", "at least top_k + 4 = 9")),
            "--lanczos-steps 5: expected at least top_k + 4 = 9"
        );
        assert_eq!(with_flags(&param("density.bins", "1", "at least 2")), None);
    }

    #[test]
    fn train_errors_name_the_flags() {
        use saddlescope_train::Error;
        let err = Error::Invalid {
            param: TrainParam::SamFrom,
            reason: "0 is outside the run's epochs 1..=4".into(),
        };
        assert_eq!(
            flagged(err),
            "--sam-from: 0 is outside the run's epochs 1..=4"
        );
        let exists = Error::RunExists {
            dir: "runs/a".into(),
        };
        assert_eq!(
            flagged(exists),
            "--out: runs/a already holds a run; continue it with --resume runs/a or pick another directory"
        );
        let none = Error::NothingToResume {
            dir: "runs/b".into(),
        };
        assert_eq!(
            flagged(none),
            "--resume: runs/b holds no run to resume (no resume.safetensors)"
        );
        let data = Error::Data(saddlescope_data::Error::BadRatio { ratio: 0.5 });
        assert!(flagged(data).starts_with("--ratio 0.5 "));
    }
}
