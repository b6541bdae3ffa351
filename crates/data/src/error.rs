//! The crate's one error type. Every variant carries the numbers a caller needs to act on it
//! (the file, the bad value, the expected value) and its message names the file or the
//! parameter to fix, because data problems are found long after the command line was typed.
//! Parameters are named as this crate names them ([`Param`]); a front end that calls them
//! something else (a CLI's flags) renders the same message with its own names through
//! [`Error::describe`].

use std::path::PathBuf;

use crate::dataset::ImageShape;

/// Everything that can go wrong while reading, generating, sub-sampling or batching a data set.
///
/// Messages are lowercase, without a final period, and start with the offending file or
/// parameter. [`Error::is_usage`] tells a front end which variants are bad parameter values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (permissions, I/O error).
    #[error("{}: cannot read", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file starts with the gzip magic bytes but does not decompress.
    #[error("{}: bad gzip data", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// A data-set directory does not exist.
    #[error("{}: no such directory", path.display())]
    MissingDir {
        /// The directory.
        path: PathBuf,
    },
    /// A file a reader needs does not exist.
    #[error("{}{}: no such file", path.display(), if *gz_too { "[.gz]" } else { "" })]
    MissingFile {
        /// The file (without `.gz` when `gz_too`).
        path: PathBuf,
        /// Whether the gzip-compressed name `path.gz` was looked for as well.
        gz_too: bool,
    },
    /// An IDX file has the wrong magic number (e.g. labels given where images are expected).
    #[error("{}: bad magic {found}, expected {expected} ({what})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The big-endian u32 the file starts with.
        found: u32,
        /// The magic number of the expected kind of file.
        expected: u32,
        /// The expected kind of file, e.g. `IDX labels`.
        what: &'static str,
    },
    /// A file is shorter than its header (or its format) says.
    #[error("{}: truncated: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The size the header implies (u128: IDX dimensions multiply past u64).
        expected: u128,
        /// The actual (decompressed) size.
        found: usize,
    },
    /// A file is longer than its header says.
    #[error("{}: {found} bytes, but the header implies {expected} (trailing data)", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The size the header implies.
        expected: u128,
        /// The actual (decompressed) size.
        found: usize,
    },
    /// A file of fixed-size records (CIFAR binary) has a size that is not a whole number of records.
    #[error("{}: size {size} is not a multiple of the {record}-byte record", path.display())]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: usize,
        /// The record size in bytes.
        record: usize,
    },
    /// An IDX image file declares images with a zero dimension.
    #[error("{}: zero-size images ({rows}x{cols})", path.display())]
    ZeroSizeImages {
        /// The file.
        path: PathBuf,
        /// Declared rows.
        rows: u32,
        /// Declared columns.
        cols: u32,
    },
    /// A file holds no samples at all.
    #[error("{}: no samples", path.display())]
    NoSamples {
        /// The file.
        path: PathBuf,
    },
    /// An IDX label file and its image file disagree on the number of samples.
    #[error("{}: {labels} labels, but {} has {images} images", labels_path.display(), images_path.display())]
    CountMismatch {
        /// The label file.
        labels_path: PathBuf,
        /// Its number of labels.
        labels: usize,
        /// The image file.
        images_path: PathBuf,
        /// Its number of images.
        images: usize,
    },
    /// The test images have another shape than the train images.
    #[error("{}: images are {found}, but the train split's are {expected}", path.display())]
    ShapeMismatch {
        /// The test image file.
        path: PathBuf,
        /// Its image shape.
        found: ImageShape,
        /// The train split's image shape.
        expected: ImageShape,
    },
    /// A label is not below the number of classes.
    #[error("{}: label {label} of sample {index} is out of range (expected < {classes})", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The sample's position in the file (0-based).
        index: usize,
        /// The label read.
        label: u32,
        /// The number of classes of the data set.
        classes: usize,
    },
    /// A `.npy` file is malformed, of an unsupported version or dtype, or its data length
    /// disagrees with its header.
    #[error("{}: {detail}", path.display())]
    BadNpy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A data-set spec string matches none of the accepted forms.
    #[error("{}", self.describe(Param::name))]
    UnknownSpec {
        /// The string given.
        spec: String,
    },
    /// A data-set spec string has an accepted form but a bad parameter.
    #[error("{}", self.describe(Param::name))]
    BadSpec {
        /// The string given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An imbalance name is not `exp`, `step` or `none`.
    #[error("{}", self.describe(Param::name))]
    UnknownImbalance {
        /// The name given.
        name: String,
    },
    /// The imbalance ratio is below 1 (or not a number).
    #[error("{}", self.describe(Param::name))]
    BadRatio {
        /// The ratio given.
        ratio: f64,
    },
    /// Counts were asked for zero classes.
    #[error("{}", self.describe(Param::name))]
    NoClasses,
    /// The imbalance profile leaves a class without training samples.
    #[error("{}", self.describe(Param::name))]
    EmptyClass {
        /// The first class left empty.
        class: usize,
        /// The head-class count used.
        n_max: usize,
        /// The imbalance ratio used.
        ratio: f64,
        /// Whether `n_max` was derived (the smallest class of the source train split) rather
        /// than given.
        n_max_derived: bool,
    },
    /// The imbalance profile asks a class for more samples than the train split holds.
    #[error("{}", self.describe(Param::name))]
    TooFewSamples {
        /// The head-class count used.
        n_max: usize,
        /// The class that cannot supply its count.
        class: usize,
        /// The count the profile asks for.
        wanted: usize,
        /// The class's samples in the source train split.
        available: usize,
    },
    /// A group rule is not `thirds` or `counts:MANY,FEW` with FEW <= MANY.
    #[error("{}", self.describe(Param::name))]
    BadGroups {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A class id is not below the number of classes.
    #[error("class {class} is out of range ({classes} classes)")]
    ClassOutOfRange {
        /// The class asked for.
        class: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A sample index is not below the number of samples of the split.
    #[error("sample {index} is out of range (the split has {len})")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The split's number of samples.
        len: usize,
    },
    /// A batch size of zero was asked for.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// Recorded long-tail metadata (e.g. from a checkpoint) no longer matches the data on disk.
    #[error("data set `{spec}` does not match the recorded {what} counts: recorded {recorded:?}, now {found:?}")]
    StaleMetadata {
        /// The data-set spec.
        spec: String,
        /// Which counts differ: `source train` or `selected train`.
        what: &'static str,
        /// The recorded values.
        recorded: Vec<usize>,
        /// The values computed now.
        found: Vec<usize>,
    },
    /// Building a tensor failed (device out of memory, unsupported dtype on the device).
    #[error("building a batch tensor")]
    Tensor(#[from] candle_core::Error),
}

/// A parameter of this crate's API, as its usage errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Param {
    /// The data-set spec ([`crate::DatasetSpec`]).
    Dataset,
    /// The long-tail profile ([`crate::LongTailConfig::imbalance`]).
    Imbalance,
    /// The imbalance ratio n_max / n_min ([`crate::LongTailConfig::ratio`]).
    Ratio,
    /// The head-class count ([`crate::LongTailConfig::n_max`]).
    NMax,
    /// The number of classes of a profile ([`crate::class_counts`]).
    Classes,
    /// The head/medium/tail rule ([`crate::LongTailConfig::groups`]).
    Groups,
}

impl Param {
    /// The name this crate uses: the field or argument that holds the parameter.
    pub fn name(self) -> &'static str {
        match self {
            Param::Dataset => "dataset",
            Param::Imbalance => "imbalance",
            Param::Ratio => "ratio",
            Param::NMax => "n_max",
            Param::Classes => "classes",
            Param::Groups => "groups",
        }
    }
}

impl Error {
    /// Whether this error is a bad parameter value (exit status 2 in the CLI) rather than
    /// bad data.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::UnknownSpec { .. }
                | Error::BadSpec { .. }
                | Error::UnknownImbalance { .. }
                | Error::BadRatio { .. }
                | Error::NoClasses
                | Error::EmptyClass { .. }
                | Error::TooFewSamples { .. }
                | Error::BadGroups { .. }
        )
    }

    /// The message with every parameter called by `name`. `Display` passes [`Param::name`];
    /// a front end passes its own names (the CLI its flags), so that one message text
    /// serves both. Errors about no parameter read as their `Display`.
    pub fn describe(&self, name: impl Fn(Param) -> &'static str) -> String {
        match self {
            Error::UnknownSpec { spec } => format!(
                "unknown data set `{spec}` for {}: expected {}",
                name(Param::Dataset),
                crate::spec::ACCEPTED_FORMS
            ),
            Error::BadSpec { spec, reason } => {
                format!("bad data set `{spec}` for {}: {reason}", name(Param::Dataset))
            }
            Error::UnknownImbalance { name: given } => format!(
                "unknown imbalance `{given}` for {}: expected exp, step or none",
                name(Param::Imbalance)
            ),
            Error::BadRatio { ratio } => format!(
                "{} {ratio} must be a number of at least 1 (n_max / n_min)",
                name(Param::Ratio)
            ),
            Error::NoClasses => format!("{} 0: need at least one class", name(Param::Classes)),
            Error::EmptyClass {
                class,
                n_max,
                ratio,
                n_max_derived: false,
            } => format!(
                "{} {ratio} with {} {n_max} leaves class {class} with 0 train samples",
                name(Param::Ratio),
                name(Param::NMax)
            ),
            Error::EmptyClass {
                class,
                n_max,
                ratio,
                n_max_derived: true,
            } => format!(
                "{} {ratio} leaves class {class} with 0 train samples: the head class gets {n_max}, by default the smallest class of the train split (set it with {})",
                name(Param::Ratio),
                name(Param::NMax)
            ),
            Error::TooFewSamples {
                n_max,
                class,
                wanted,
                available,
            } => format!(
                "{} {n_max} asks class {class} for {wanted} train samples, but it has only {available}",
                name(Param::NMax)
            ),
            Error::BadGroups { value, reason } => {
                format!("bad {} `{value}`: {reason}", name(Param::Groups))
            }
            other => other.to_string(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
