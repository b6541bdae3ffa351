//! The long-tailed view of a data set: which profile, which head count, which seed, and the
//! resulting per-class counts and groups. It is serialized into checkpoint metadata; analysis
//! rebuilds exactly the same train subset from it ([`LongTailed::load`]) and refuses data that
//! has changed since ([`Error::StaleMetadata`]).

use saddlescope_results::Group;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::groups::GroupRule;
use crate::imbalance::{self, check_ratio, Imbalance};
use crate::spec::DatasetSpec;

/// What the user asks for (the `--imbalance`, `--ratio`, `--n-max`, `--seed`, `--groups` flags).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LongTailConfig {
    /// Profile shape.
    pub imbalance: Imbalance,
    /// n_max / n_min, at least 1.
    pub ratio: f64,
    /// Head-class count; `None` = the smallest per-class count of the source train split, so
    /// that every class can supply it.
    pub n_max: Option<usize>,
    /// Seed of the per-class selection.
    pub seed: u64,
    /// Group rule.
    pub groups: GroupRule,
}

impl Default for LongTailConfig {
    /// Exponential profile at ratio 100 (the paper's main CIFAR-10-LT / CIFAR-100-LT setting),
    /// default n_max, seed 0, thirds.
    fn default() -> Self {
        LongTailConfig {
            imbalance: Imbalance::Exp,
            ratio: 100.0,
            n_max: None,
            seed: 0,
            groups: GroupRule::Thirds,
        }
    }
}

impl LongTailConfig {
    /// Checks what can be checked before any data is loaded: the ratio.
    ///
    /// # Errors
    /// [`Error::BadRatio`].
    pub fn validate(&self) -> Result<()> {
        check_ratio(self.ratio)
    }
}

/// A resolved long-tailed setting and its per-class outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongTailed {
    /// The source data set.
    pub dataset: DatasetSpec,
    /// Profile shape.
    pub imbalance: Imbalance,
    /// n_max / n_min.
    pub ratio: f64,
    /// Head-class count actually used (the default resolved).
    pub n_max: usize,
    /// Seed of the per-class selection.
    pub seed: u64,
    /// Group rule.
    pub group_rule: GroupRule,
    /// Per-class train counts of the source split (checked again on rebuild).
    pub source_train_counts: Vec<usize>,
    /// Per-class train counts after the imbalance (the selected subset).
    pub train_counts: Vec<usize>,
    /// Per-class groups, from `train_counts` by `group_rule`.
    pub groups: Vec<Group>,
}

impl LongTailed {
    /// Resolves `config` against a loaded data set: the default n_max, the profile's counts,
    /// that every class can supply its count, and the groups.
    ///
    /// # Errors
    /// [`Error::BadRatio`], [`Error::EmptyClass`], [`Error::TooFewSamples`] (all name the parameter).
    ///
    /// # Example
    /// ```
    /// use saddlescope_data::{Dataset, Group, LongTailConfig, LongTailed};
    /// let data = Dataset::load(&"synthetic:classes=3,n=100".parse()?)?;
    /// let config = LongTailConfig { ratio: 10.0, ..LongTailConfig::default() };
    /// let lt = LongTailed::new(&data, &config)?;
    /// assert_eq!(lt.train_counts, [100, 31, 10]);
    /// assert_eq!(lt.groups, [Group::Head, Group::Medium, Group::Tail]);
    /// let long_tailed = lt.apply(data)?;
    /// assert_eq!(long_tailed.train().len(), 141);
    /// # Ok::<(), saddlescope_data::Error>(())
    /// ```
    pub fn new(dataset: &Dataset, config: &LongTailConfig) -> Result<LongTailed> {
        config.validate()?;
        let source = dataset.train().class_counts();
        let n_max = config
            .n_max
            .unwrap_or_else(|| source.iter().copied().min().unwrap_or(0));
        let counts = imbalance::class_counts(config.imbalance, source.len(), n_max, config.ratio)
            .map_err(|err| match err {
            Error::EmptyClass {
                class,
                n_max,
                ratio,
                ..
            } => Error::EmptyClass {
                class,
                n_max,
                ratio,
                n_max_derived: config.n_max.is_none(),
            },
            other => other,
        })?;
        if let Some(class) = (0..counts.len()).find(|&c| counts[c] > source[c]) {
            return Err(Error::TooFewSamples {
                n_max,
                class,
                wanted: counts[class],
                available: source[class],
            });
        }
        Ok(LongTailed {
            dataset: dataset.spec().clone(),
            imbalance: config.imbalance,
            ratio: config.ratio,
            n_max,
            seed: config.seed,
            group_rule: config.groups,
            groups: config.groups.assign(&counts),
            source_train_counts: source,
            train_counts: counts,
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.train_counts.len()
    }

    /// The classes of one group, in class order.
    pub fn classes_in(&self, group: Group) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|&c| self.groups[c] == group)
            .collect()
    }

    /// Replaces the data set's train split by the long-tailed subset (see
    /// [`select`](crate::select): sorted original indices); the test split stays balanced.
    ///
    /// # Errors
    /// [`Error::StaleMetadata`] when the data set's source counts or the recomputed profile
    /// differ from the recorded ones (e.g. another directory behind the same spec).
    pub fn apply(&self, dataset: Dataset) -> Result<Dataset> {
        let stale = |what, recorded: &[usize], found: Vec<usize>| Error::StaleMetadata {
            spec: self.dataset.to_string(),
            what,
            recorded: recorded.to_vec(),
            found,
        };
        let source = dataset.train().class_counts();
        if source != self.source_train_counts {
            return Err(stale("source train", &self.source_train_counts, source));
        }
        let counts = imbalance::class_counts(self.imbalance, source.len(), self.n_max, self.ratio)?;
        if counts != self.train_counts {
            return Err(stale("selected train", &self.train_counts, counts));
        }
        let indices = imbalance::select(dataset.train().labels(), &counts, self.seed)?;
        let train = dataset.train().subset(&indices)?;
        Ok(dataset.with_train(train))
    }

    /// Loads the recorded data set and applies the recorded imbalance: the exact train subset
    /// of the run that wrote this metadata.
    ///
    /// # Errors
    /// Those of [`Dataset::load`] and [`LongTailed::apply`].
    pub fn load(&self) -> Result<Dataset> {
        self.apply(Dataset::load(&self.dataset)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(spec: &str) -> Dataset {
        Dataset::load(&spec.parse().unwrap()).unwrap()
    }

    #[test]
    fn mnist10k_exp_100_uses_the_smallest_class_as_n_max() {
        // Smallest train class of mnist10k is digit 5 with 663 samples (README).
        let data = Dataset::load(&DatasetSpec::Mnist10k).unwrap();
        let lt = LongTailed::new(&data, &LongTailConfig::default()).unwrap();
        assert_eq!(lt.n_max, 663);
        assert_eq!(
            lt.train_counts,
            imbalance::class_counts(Imbalance::Exp, 10, 663, 100.0).unwrap()
        );
        assert_eq!(lt.train_counts[9], 6);
        let total: usize = lt.train_counts.iter().sum();
        let applied = lt.apply(data).unwrap();
        assert_eq!(applied.train().len(), total);
        assert_eq!(applied.train().class_counts(), lt.train_counts);
        assert_eq!(applied.test().class_counts(), vec![200; 10]);
    }

    #[test]
    fn n_max_override_and_its_errors() {
        let data = synthetic("synthetic:classes=4,dim=2,n=50,test=1");
        let config = LongTailConfig {
            n_max: Some(40),
            ratio: 4.0,
            ..LongTailConfig::default()
        };
        let lt = LongTailed::new(&data, &config).unwrap();
        assert_eq!(lt.train_counts, [40, 25, 15, 10]);
        let too_many = LongTailConfig {
            n_max: Some(51),
            ..config
        };
        let err = LongTailed::new(&data, &too_many).unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "n_max 51 asks class 0 for 51 train samples, but it has only 50"
        );
        let empty = LongTailConfig {
            ratio: 100.0,
            ..config
        };
        let err = LongTailed::new(&data, &empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ratio 100 with n_max 40 leaves class 3 with 0 train samples"
        );
        // Issue 16: a derived n_max says where it came from and what sets it.
        let derived = LongTailConfig {
            n_max: None,
            ..empty
        };
        assert_eq!(
            LongTailed::new(&data, &derived).unwrap_err().to_string(),
            "ratio 100 leaves class 3 with 0 train samples: the head class gets 50, by default \
             the smallest class of the train split (set it with n_max)"
        );
        let low = LongTailConfig {
            ratio: 0.9,
            ..config
        };
        assert!(matches!(
            LongTailed::new(&data, &low),
            Err(Error::BadRatio { .. })
        ));
        assert!(matches!(low.validate(), Err(Error::BadRatio { .. })));
    }

    #[test]
    fn serde_round_trip_rebuilds_the_same_subset() {
        let data = synthetic("synthetic:classes=5,dim=3,n=60,test=2,seed=4");
        // Counts at ratio 10 from n_max 60: [60, 33, 18, 10, 6].
        let config = LongTailConfig {
            ratio: 10.0,
            seed: 9,
            groups: "counts:30,11".parse().unwrap(),
            ..LongTailConfig::default()
        };
        let lt = LongTailed::new(&data, &config).unwrap();
        let json = serde_json::to_string(&lt).unwrap();
        assert!(json.contains("\"dataset\":\"synthetic:classes=5,dim=3,n=60,test=2,seed=4,sep=3\""));
        assert!(json.contains("\"train_counts\":[60,33,18,10,6]"));
        assert!(json.contains("\"group_rule\":\"counts:30,11\""));
        assert!(json.contains("\"groups\":[\"head\",\"head\",\"medium\",\"tail\",\"tail\"]"));
        let back: LongTailed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lt);
        assert_eq!(back.load().unwrap(), lt.apply(data.clone()).unwrap());
        assert_eq!(lt.classes_in(Group::Tail), [3, 4]);
        assert_eq!(lt.classes(), 5);
        // Another selection seed gives another subset of the same sizes.
        let other = LongTailed::new(&data, &LongTailConfig { seed: 10, ..config }).unwrap();
        let (a, b) = (lt.apply(data.clone()).unwrap(), other.apply(data).unwrap());
        assert_eq!(a.train().class_counts(), b.train().class_counts());
        assert_ne!(a.train(), b.train());
    }

    #[test]
    fn stale_metadata_is_refused() {
        let data = synthetic("synthetic:classes=3,dim=2,n=20,test=1");
        let config = LongTailConfig {
            ratio: 10.0,
            ..LongTailConfig::default()
        };
        let lt = LongTailed::new(&data, &config).unwrap();
        let bigger = synthetic("synthetic:classes=3,dim=2,n=30,test=1");
        let err = lt.apply(bigger).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data set `synthetic:classes=3,dim=2,n=20,test=1,seed=0,sep=3` does not match the \
             recorded source train counts: recorded [20, 20, 20], now [30, 30, 30]"
        );
        let mut edited = lt.clone();
        edited.train_counts[1] += 1;
        let err = edited.apply(data).unwrap_err();
        assert!(matches!(
            err,
            Error::StaleMetadata {
                what: "selected train",
                ..
            }
        ));
    }
}
