//! Data sets for long-tailed classification: MNIST IDX, CIFAR-10/100 binary, synthetic
//! mixtures, imbalance selection, groups and batching.
//!
//! A tour:
//! - [`DatasetSpec`] is the `--dataset` string (`mnist10k`, `mnist:DIR`, `cifar10:DIR`,
//!   `cifar100:DIR`, `synthetic:...`); [`Dataset::load`] reads or generates it into two
//!   compact [`Split`]s (u8 pixels or f32 features plus labels), checking every file and
//!   naming it in every [`Error`]. `mnist10k` is embedded in the binary.
//! - [`class_counts`] computes the paper's long-tailed profiles ([`Imbalance`]: `exp`,
//!   `step`, `none`) and [`select`] the seeded per-class subset; [`LongTailed`] bundles a
//!   resolved setting with its counts and [`Group`]s ([`GroupRule`]: `thirds` or
//!   `counts:MANY,FEW`), is stored in checkpoints, and rebuilds the same subset.
//! - [`Split::batches`], [`Split::class_batches`] and [`Split::batches_of`] yield candle
//!   tensors `(N, C, H, W)` and `(N,)` labels, normalized per data set ([`Normalization`]),
//!   optionally shuffled and augmented per `(seed, epoch)` ([`BatchSpec`]).
//! - [`read_npy`] reads a NumPy `.npy` array of floats strictly (sizes checked before any
//!   allocation), for the dense matrices the spectral estimators are checked on.
//!
//! ```
//! use candle_core::Device;
//! use saddlescope_data::{BatchSpec, Dataset, DatasetSpec, LongTailConfig, LongTailed};
//!
//! let data = Dataset::load(&DatasetSpec::Mnist10k)?;
//! assert_eq!(data.train().len(), 8000);
//! let lt = LongTailed::new(&data, &LongTailConfig::default())?; // exp, ratio 100
//! assert_eq!(lt.n_max, 663); // the smallest mnist10k class (digit 5)
//! let data = lt.apply(data)?;
//! let (images, labels) = data.train().class_batches(9, None, &BatchSpec::new(64, Device::Cpu))?
//!     .next()
//!     .expect("class 9 keeps 6 samples")?;
//! assert_eq!(images.dims(), [6, 1, 28, 28]);
//! assert_eq!(labels.to_vec1::<u32>()?, [9; 6]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod augment;
mod batch;
mod cifar;
mod dataset;
mod error;
mod groups;
mod idx;
mod imbalance;
mod io;
mod longtailed;
mod normalize;
mod npy;
mod rng;
mod spec;
mod synthetic;

pub use augment::PADDING as AUGMENT_PADDING;
pub use batch::{BatchSpec, Batches, EpochSeed};
pub use dataset::{Dataset, ImageShape, Pixels, Split};
pub use error::{Error, Param, Result};
pub use groups::GroupRule;
pub use imbalance::{check_ratio, class_counts, select, Imbalance};
pub use longtailed::{LongTailConfig, LongTailed};
pub use normalize::Normalization;
pub use npy::{read_npy, shape_string, NpyArray};
pub use saddlescope_results::Group;
pub use spec::{DatasetSpec, ACCEPTED_FORMS};
pub use synthetic::SyntheticSpec;
