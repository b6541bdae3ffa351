//! No error message repeats its source (issue 14): every variant of every library error,
//! built with a realistic source, printed as the binary prints it (`{:#}` of an
//! `anyhow::Error`, which follows `source()`). Two checks: no message of the chain contains
//! the message of its source (what `#[error("{}: {source}")]` plus `#[source]` did), and no
//! `": "`-separated segment of the printed line appears twice.

use std::error::Error as StdError;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use saddlescope_data::ImageShape;
use saddlescope_spectral::OperatorError;

/// A real "No such file or directory" from the operating system.
fn io_error() -> std::io::Error {
    std::fs::read("/nonexistent/saddlescope/file").unwrap_err()
}

/// A real candle shape error.
fn candle_error() -> candle_core::Error {
    let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    a.matmul(&b).unwrap_err()
}

/// A real PNG encoder error (the image data is shorter than the header says).
fn png_error() -> png::EncodingError {
    let mut encoder = png::Encoder::new(Vec::new(), 2, 2);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[0u8; 3]).unwrap_err()
}

fn path() -> PathBuf {
    PathBuf::from("/runs/a/last.safetensors")
}

fn nn_candle() -> saddlescope_nn::Error {
    saddlescope_nn::Error::Candle(candle_error())
}

/// An operator failure as the analysis sees one: an HVP that failed inside candle.
fn spectral_operator() -> saddlescope_spectral::Error {
    saddlescope_spectral::Error::Operator {
        application: 7,
        source: OperatorError::new(nn_candle()),
    }
}

/// The message of every error of the chain starting at `err`.
fn chain(err: &(dyn StdError + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        messages.push(e.to_string());
        next = e.source();
    }
    messages
}

/// Asserts both checks for one error; returns the printed line.
fn assert_repeats_nothing(err: anyhow::Error) -> String {
    let line = format!("{err:#}");
    let messages = chain(err.as_ref());
    for pair in messages.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{line:?}: {:?} repeats its source {:?}",
            pair[0],
            pair[1]
        );
    }
    let segments: Vec<&str> = line.split(": ").collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !segments[..i].contains(segment),
            "{line:?} repeats {segment:?}"
        );
    }
    line
}

/// The variants declared in `pub enum Error` of a crate's `src/error.rs`: lines of the
/// enum body indented four spaces that start with a capital (the variant names).
fn declared_variants(krate: &str) -> Vec<String> {
    let path = format!("{}/crates/{krate}/src/error.rs", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let body = &text[text.find("pub enum Error {").unwrap()..];
    let body = &body[..body.find("\n}").unwrap()];
    body.lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Checks every error of `cases` and that they cover every variant `krate` declares (the
/// variant name is the first word of `{:?}`).
fn check_crate<E: StdError + Send + Sync + 'static + std::fmt::Debug>(krate: &str, cases: Vec<E>) {
    let mut covered: Vec<String> = cases
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for e in cases {
        assert_repeats_nothing(anyhow::Error::new(e));
    }
    covered.sort();
    covered.dedup();
    let mut declared = declared_variants(krate);
    declared.sort();
    assert_eq!(covered, declared, "{krate}: a variant without a case");
}

#[test]
fn data_errors_repeat_nothing() {
    use saddlescope_data::Error;
    let p = path();
    let shape = |height| ImageShape {
        channels: 1,
        height,
        width: 28,
    };
    check_crate(
        "data",
        vec![
            Error::Io {
                path: p.clone(),
                source: io_error(),
            },
            Error::Gzip {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "corrupt deflate stream",
                ),
            },
            Error::MissingDir { path: p.clone() },
            Error::MissingFile {
                path: p.clone(),
                gz_too: true,
            },
            Error::BadMagic {
                path: p.clone(),
                found: 2051,
                expected: 2049,
                what: "IDX labels",
            },
            Error::Truncated {
                path: p.clone(),
                expected: 1568,
                found: 789,
            },
            Error::TrailingBytes {
                path: p.clone(),
                expected: 1568,
                found: 1570,
            },
            Error::RecordSize {
                path: p.clone(),
                size: 3083,
                record: 3073,
            },
            Error::ZeroSizeImages {
                path: p.clone(),
                rows: 0,
                cols: 28,
            },
            Error::NoSamples { path: p.clone() },
            Error::CountMismatch {
                labels_path: p.clone(),
                labels: 2,
                images_path: PathBuf::from("/data/train-images-idx3-ubyte"),
                images: 3,
            },
            Error::ShapeMismatch {
                path: p.clone(),
                found: shape(32),
                expected: shape(28),
            },
            Error::LabelOutOfRange {
                path: p.clone(),
                index: 1,
                label: 12,
                classes: 10,
            },
            Error::BadNpy {
                path: p.clone(),
                detail: "truncated: shape (3, 3) of '<f8' needs 72 data bytes, file has 64".into(),
            },
            "imagenet"
                .parse::<saddlescope_data::DatasetSpec>()
                .unwrap_err(),
            "cifar10:"
                .parse::<saddlescope_data::DatasetSpec>()
                .unwrap_err(),
            Error::UnknownImbalance {
                name: "zipf".into(),
            },
            Error::BadRatio { ratio: 0.5 },
            Error::NoClasses,
            Error::EmptyClass {
                class: 6,
                n_max: 50,
                ratio: 1000.0,
                n_max_derived: false,
            },
            Error::EmptyClass {
                class: 8,
                n_max: 50,
                ratio: 100.0,
                n_max_derived: true,
            },
            Error::TooFewSamples {
                n_max: 21,
                class: 0,
                wanted: 21,
                available: 20,
            },
            "halves".parse::<saddlescope_data::GroupRule>().unwrap_err(),
            Error::ClassOutOfRange {
                class: 3,
                classes: 2,
            },
            Error::IndexOutOfRange { index: 9, len: 5 },
            Error::ZeroBatchSize,
            Error::StaleMetadata {
                spec: "mnist10k".into(),
                what: "source train",
                recorded: vec![800, 900],
                found: vec![800, 901],
            },
            Error::Tensor(candle_error()),
        ],
    );
}

#[test]
fn nn_errors_repeat_nothing() {
    use saddlescope_nn::Error;
    check_crate(
        "nn",
        vec![
            nn_candle(),
            "transformer"
                .parse::<saddlescope_nn::ModelSpec>()
                .unwrap_err(),
            "hinge".parse::<saddlescope_nn::LossSpec>().unwrap_err(),
            Error::ModelConfig {
                reason: "a CNN needs at least one channel width".into(),
            },
            Error::UnsupportedDtype { dtype: DType::U8 },
            Error::Shape {
                what: "logits",
                expected: "(N, 10)".into(),
                got: vec![4, 3],
            },
            Error::Dtype {
                what: "labels",
                expected: DType::U32,
                got: DType::F32,
            },
            Error::LabelOutOfRange {
                index: 2,
                label: 11,
                classes: 10,
            },
            Error::ClassStats {
                reason: "class 3 has no samples".into(),
            },
            Error::StateMismatch {
                missing: vec!["linear.bias".into()],
                unexpected: vec!["fc9.weight".into()],
                mis_shaped: vec![("fc1.weight".into(), vec![8, 6], vec![3, 3])],
            },
            Error::ParamCount {
                expected: 4,
                got: 3,
            },
            Error::ParamShape {
                name: "fc1.weight".into(),
                expected: vec![8, 6],
                got: vec![6, 8],
            },
            Error::NonFinite {
                name: "linear.weight".into(),
                index: 0,
                value: f64::NAN,
            },
            Error::UnknownPrefix {
                prefix: "classifier.".into(),
                example: "linear.weight".into(),
            },
            Error::FlatLength {
                expected: 90,
                got: 89,
            },
            Error::BatchTooSmall {
                layer: "bn1".into(),
                values: 1,
            },
            Error::EmptySampleSet,
        ],
    );
}

#[test]
fn train_errors_repeat_nothing() {
    use saddlescope_train::{Error, Param};
    check_crate(
        "train",
        vec![
            Error::Io {
                path: path(),
                source: io_error(),
            },
            Error::Corrupt {
                path: path(),
                detail: "no `resume_state` metadata".into(),
            },
            Error::Invalid {
                param: Param::Lr,
                reason: "-0.1 is not a positive number".into(),
            },
            Error::RunExists {
                dir: PathBuf::from("/runs/a"),
            },
            Error::NothingToResume {
                dir: PathBuf::from("/runs/a"),
            },
            Error::Diverged {
                epoch: 3,
                step: 7,
                loss: f64::NAN,
            },
            Error::Diverged {
                epoch: 1,
                step: 11,
                loss: f64::INFINITY,
            },
            Error::Nn(nn_candle()),
            Error::Data(saddlescope_data::Error::Io {
                path: path(),
                source: io_error(),
            }),
            Error::Results(results_io()),
            Error::Candle(candle_error()),
            Error::Bug("the best checkpoint has no metrics".into()),
        ],
    );
}

#[test]
fn analysis_errors_repeat_nothing() {
    use saddlescope_analysis::{Error, Param};
    let settings = saddlescope_spectral::SpectrumParams {
        top_k: 97,
        ..Default::default()
    };
    check_crate(
        "analysis",
        vec![
            Error::Invalid {
                param: Param::ClassIds,
                reason: "class 7 does not exist (the checkpoint has 3 classes)".into(),
            },
            Error::Checkpoint {
                path: path(),
                detail: "state does not match the model: missing linear.bias".into(),
            },
            Error::Io {
                path: path(),
                source: io_error(),
            },
            Error::Corrupt {
                path: path(),
                detail: "expected value at line 1 column 1".into(),
            },
            Error::Settings(settings.validate().unwrap_err()),
            Error::Spectral {
                class: "3".into(),
                source: spectral_operator(),
            },
            Error::NonFiniteLoss {
                class: 1,
                value: f64::NAN,
                point: "t = -1e300 along u_max".into(),
            },
            Error::Nn(nn_candle()),
            Error::Data(saddlescope_data::Error::MissingDir { path: path() }),
            Error::Train(saddlescope_train::Error::Io {
                path: path(),
                source: io_error(),
            }),
            Error::Results(results_io()),
            Error::Candle(candle_error()),
        ],
    );
}

/// A results-crate read failure.
fn results_io() -> saddlescope_results::Error {
    saddlescope_results::Error::Io {
        path: path(),
        source: io_error(),
    }
}

#[test]
fn results_errors_repeat_nothing() {
    use saddlescope_results::Error;
    // A real encoding failure: JSON object keys must be strings.
    let encode =
        serde_json::to_string(&std::collections::HashMap::from([((1, 2), 3)])).unwrap_err();
    check_crate(
        "results",
        vec![
            results_io(),
            Error::Encode {
                path: path(),
                source: encode,
            },
            Error::Corrupt {
                path: path(),
                detail: "expected value at line 1 column 1".into(),
            },
        ],
    );
}

#[test]
fn spectral_errors_repeat_nothing() {
    use saddlescope_spectral::Error;
    check_crate(
        "spectral",
        vec![
            spectral_operator(),
            Error::EmptyOperator,
            Error::NotSymmetricOperator,
            Error::DimensionMismatch {
                expected: 10,
                got: 9,
            },
            Error::InvalidParam {
                name: "steps",
                value: "0".into(),
                expected: "at least 1".into(),
            },
            Error::BadStartVector { norm: 0.0 },
            Error::NonFinite {
                what: "alpha",
                value: f64::NAN,
                step: 3,
            },
            Error::EigenSolver { size: 30 },
            Error::NotSquare { rows: 3, cols: 4 },
            Error::NotSymmetric {
                row: 1,
                col: 0,
                diff: 0.1,
                scale: 2.1,
                tol: 1e-8,
            },
            Error::NonFiniteEntry {
                row: 0,
                col: 1,
                value: f64::INFINITY,
            },
            Error::BufferLength {
                rows: 2,
                cols: 2,
                expected: 4,
                got: 3,
            },
            Error::EmptyMeasures,
            Error::DegenerateDensity {
                sigma: 1e-9,
                bin_width: 0.1,
            },
            Error::PotentialBug {
                message: "tridiagonal of size 0",
            },
        ],
    );
}

#[test]
fn plot_errors_repeat_nothing() {
    use saddlescope_plot::Error;
    let p = PathBuf::from("/figures/density_grid.png");
    check_crate(
        "plot",
        vec![
            Error::UnknownFormat {
                path: PathBuf::from("/figures/grid.pdf"),
            },
            Error::InvalidOption {
                path: p.clone(),
                option: "linthresh",
                value: -1.0,
                expected: "a finite number > 0",
            },
            Error::Empty {
                path: p.clone(),
                what: "no classes".into(),
            },
            Error::InvalidData {
                path: p.clone(),
                detail: "class 3 has a NaN density".into(),
            },
            Error::Density {
                path: p.clone(),
                what: "class 3".into(),
                source: saddlescope_spectral::Error::EmptyMeasures,
            },
            Error::Font { path: p.clone() },
            Error::Draw {
                path: p.clone(),
                message: "backend error".into(),
            },
            Error::Encode {
                path: p.clone(),
                source: png_error(),
            },
            Error::Io {
                path: p,
                source: io_error(),
            },
        ],
    );
}

/// The example: `plot /nonexistent` printed the OS error twice.
#[test]
fn a_missing_analysis_reads_once() {
    let err =
        saddlescope_results::read_report(&PathBuf::from("/nonexistent/spectrum.json")).unwrap_err();
    let line = assert_repeats_nothing(anyhow::Error::new(err));
    assert_eq!(line, format!("/nonexistent/spectrum.json: {}", io_error()));
}
