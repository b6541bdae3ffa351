//! The crate's one error type. Every variant carries the numbers a caller needs to act on it
//! (the file, the bad value, the expected value) and its message names the file or the flag
//! to fix, because data problems are found long after the command line was typed.

use std::path::PathBuf;

use crate::dataset::ImageShape;

/// Everything that can go wrong while reading, generating, sub-sampling or batching a data set.
///
/// Messages are lowercase, without a final period, and start with the offending file or flag.
/// [`Error::is_usage`] tells a command-line front end which variants are bad flag values.
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
    /// A `--dataset` string matches none of the accepted forms.
    #[error(
        "unknown data set `{spec}` for --dataset: expected {}",
        crate::spec::ACCEPTED_FORMS
    )]
    UnknownSpec {
        /// The string given.
        spec: String,
    },
    /// A `--dataset` string has an accepted form but a bad parameter.
    #[error("bad data set `{spec}` for --dataset: {reason}")]
    BadSpec {
        /// The string given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `--imbalance` name is not `exp`, `step` or `none`.
    #[error("unknown imbalance `{name}` for --imbalance: expected exp, step or none")]
    UnknownImbalance {
        /// The name given.
        name: String,
    },
    /// The imbalance ratio is below 1 (or not a number).
    #[error("--ratio {ratio} must be a number of at least 1 (n_max / n_min)")]
    BadRatio {
        /// The ratio given.
        ratio: f64,
    },
    /// Counts were asked for zero classes.
    #[error("--classes 0: need at least one class")]
    NoClasses,
    /// The imbalance profile leaves a class without training samples.
    #[error("--ratio {ratio} with --n-max {n_max} leaves class {class} with 0 train samples")]
    EmptyClass {
        /// The first class left empty.
        class: usize,
        /// The head-class count used.
        n_max: usize,
        /// The imbalance ratio used.
        ratio: f64,
    },
    /// The imbalance profile asks a class for more samples than the train split holds.
    #[error("--n-max {n_max} asks class {class} for {wanted} train samples, but it has only {available}")]
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
    /// A `--groups` value is not `thirds` or `counts:MANY,FEW` with FEW <= MANY.
    #[error("bad --groups `{value}`: {reason}")]
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

impl Error {
    /// Whether this error is a bad flag value (exit status 2 in the CLI) rather than bad data.
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
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
