//! The crate's one error type.

use candle_core::DType;

/// Everything that can go wrong in `saddlescope-nn`; variants carry the offending numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed inside candle (its message, unchanged).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A model specification string did not parse.
    #[error("bad model spec {spec:?}: {reason} (expected mlp[-tanh][:H1,H2,...], cnn[-tanh][:W1,W2,...], resnet<6n+2>[-normed])")]
    ModelSpec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A loss specification string did not parse or holds a bad parameter.
    #[error("bad loss spec {spec:?}: {reason} (expected ce, ldam[:max_m=M,s=S], vs[:gamma=G,tau=T], la[:tau=T] or focal[:gamma=G])")]
    LossSpec {
        /// The text or value given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model was asked for with an impossible configuration.
    #[error("bad model configuration: {reason}")]
    ModelConfig {
        /// What is wrong.
        reason: String,
    },
    /// Only floating-point models in f32 or f64 are supported.
    #[error("unsupported dtype {dtype:?}: models run in f32 or f64")]
    UnsupportedDtype {
        /// The dtype asked for.
        dtype: DType,
    },
    /// A tensor has the wrong shape.
    #[error("{what} has shape {got:?}, expected {expected}")]
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// A tensor has the wrong dtype.
    #[error("{what} has dtype {got:?}, expected {expected:?}")]
    Dtype {
        /// Which tensor.
        what: &'static str,
        /// The dtype expected.
        expected: DType,
        /// The dtype it has.
        got: DType,
    },
    /// A label is not a valid class index.
    #[error("label {label} at position {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// Position in the batch.
        index: usize,
        /// The label value.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
    /// Class counts or class weights are unusable.
    #[error("bad class statistics: {reason}")]
    ClassStats {
        /// What is wrong.
        reason: String,
    },
    /// A state dict does not match the model's parameters and buffers.
    #[error(
        "state does not match the model: {}",
        describe_mismatch(missing, unexpected, mis_shaped)
    )]
    StateMismatch {
        /// Names the model has but the state lacks.
        missing: Vec<String>,
        /// Names the state has but the model lacks.
        unexpected: Vec<String>,
        /// Names whose shapes differ: (name, model shape, state shape).
        mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    /// A list of parameter values does not match the model's parameters.
    #[error("got {got} parameter values, the model has {expected} parameters")]
    ParamCount {
        /// The model's parameter count (tensors, not scalars).
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// A parameter value has the wrong shape.
    #[error("parameter {name} has shape {got:?}, expected {expected:?}")]
    ParamShape {
        /// The parameter's name.
        name: String,
        /// The model's shape for it.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A parameter or buffer holds NaN or infinity.
    #[error("tensor {name} holds a non-finite value {value} at flat index {index}")]
    NonFinite {
        /// The tensor's name.
        name: String,
        /// Flat index of the first bad element.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A parameter name prefix selects nothing.
    #[error("parameter prefix {prefix:?} matches no parameter (names look like {example:?})")]
    UnknownPrefix {
        /// The prefix given.
        prefix: String,
        /// One of the model's parameter names, as a hint.
        example: String,
    },
    /// A flat vector has the wrong length.
    #[error("flat vector has length {got}, expected {expected} (the selected parameter count)")]
    FlatLength {
        /// Expected length.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Train-mode batch norm needs more than one value per channel.
    #[error(
        "batch norm {layer} in train mode needs more than one value per channel, got {values}"
    )]
    BatchTooSmall {
        /// The layer's name.
        layer: String,
        /// Values per channel in the batch.
        values: usize,
    },
    /// A Hessian operator was given no samples.
    #[error("the sample set is empty: give at least one non-empty batch")]
    EmptySampleSet,
}

fn describe_mismatch(
    missing: &[String],
    unexpected: &[String],
    mis_shaped: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", unexpected.join(", ")));
    }
    if !mis_shaped.is_empty() {
        let shapes: Vec<String> = mis_shaped
            .iter()
            .map(|(name, want, got)| format!("{name} (model {want:?}, state {got:?})"))
            .collect();
        parts.push(format!("mis-shaped {}", shapes.join(", ")));
    }
    parts.join("; ")
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
