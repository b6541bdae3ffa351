//! Architecture names: `mlp:256,128`, `mlp-tanh:16`, `cnn`, `cnn:8,16`, `resnet32`,
//! `resnet32-normed`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layers::Activation;

/// Widths of the default `cnn` (sized for MNIST on 2 CPU cores).
const CNN_DEFAULT_WIDTHS: [usize; 2] = [16, 32];

/// Which network to build; parses from and prints as its text form, which is also its
/// serde form (so it can sit in checkpoint metadata as one string).
///
/// | text | network |
/// |---|---|
/// | `mlp` / `mlp:256,128` | MLP with those hidden widths, ReLU (no width: softmax regression) |
/// | `mlp-tanh:16` | the same with tanh |
/// | `cnn` / `cnn:8,16` / `cnn-tanh:2,3` | small CNN, default widths 16, 32 |
/// | `resnet32`, `resnet20`, … | CIFAR ResNet of depth 6n+2 with a `Linear` head |
/// | `resnet32-normed` | the same with LDAM's `NormedLinear` head |
///
/// ```
/// use saddlescope_nn::ModelSpec;
/// let spec: ModelSpec = "resnet32-normed".parse()?;
/// assert_eq!(spec, ModelSpec::ResNet { depth: 32, normed: true });
/// assert_eq!("mlp:256,128".parse::<ModelSpec>()?.to_string(), "mlp:256,128");
/// # Ok::<(), saddlescope_nn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelSpec {
    /// Fully connected network.
    Mlp {
        /// Hidden layer widths (may be empty).
        hidden: Vec<usize>,
        /// Hidden nonlinearity.
        activation: Activation,
    },
    /// Stages of conv-BN-act-avgpool, then a linear classifier.
    Cnn {
        /// Channels of each stage (at least one).
        widths: Vec<usize>,
        /// Stage nonlinearity.
        activation: Activation,
    },
    /// CIFAR ResNet with option-A shortcuts.
    ResNet {
        /// Depth `6n + 2` (32 for ResNet-32).
        depth: usize,
        /// `NormedLinear` (cosine) head instead of `Linear`.
        normed: bool,
    },
}

impl ModelSpec {
    /// ResNet-32 with a `Linear` head.
    pub fn resnet32() -> Self {
        ModelSpec::ResNet {
            depth: 32,
            normed: false,
        }
    }

    /// The default small CNN (`cnn`).
    pub fn cnn() -> Self {
        ModelSpec::Cnn {
            widths: CNN_DEFAULT_WIDTHS.to_vec(),
            activation: Activation::Relu,
        }
    }
}

fn parse_widths(spec: &str, list: &str) -> Result<Vec<usize>, Error> {
    list.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::ModelSpec {
                spec: spec.to_string(),
                reason: format!("width {w:?} is not a positive integer"),
            }),
        })
        .collect()
}

impl FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::ModelSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (head, args) = match s.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (s, None),
        };
        let (family, activation) = match head.strip_suffix("-tanh") {
            Some(f) => (f, Activation::Tanh),
            None => (head, Activation::Relu),
        };
        match (family, args) {
            ("mlp", args) => Ok(ModelSpec::Mlp {
                hidden: args
                    .map(|a| parse_widths(s, a))
                    .transpose()?
                    .unwrap_or_default(),
                activation,
            }),
            ("cnn", args) => Ok(ModelSpec::Cnn {
                widths: match args {
                    Some(a) => parse_widths(s, a)?,
                    None => CNN_DEFAULT_WIDTHS.to_vec(),
                },
                activation,
            }),
            (f, None) if f.starts_with("resnet") && activation == Activation::Relu => {
                let (digits, normed) = match f["resnet".len()..].strip_suffix("-normed") {
                    Some(d) => (d, true),
                    None => (&f["resnet".len()..], false),
                };
                let depth: usize = digits
                    .parse()
                    .map_err(|_| bad("resnet depth is not a number"))?;
                if depth < 8 || !(depth - 2).is_multiple_of(6) {
                    return Err(bad(
                        "resnet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...)",
                    ));
                }
                Ok(ModelSpec::ResNet { depth, normed })
            }
            (f, Some(_)) if f.starts_with("resnet") => Err(bad("resnet takes no widths")),
            _ => Err(bad("unknown architecture")),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = |a: &Activation| if *a == Activation::Tanh { "-tanh" } else { "" };
        let list = |w: &[usize]| {
            w.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            ModelSpec::Mlp { hidden, activation } if hidden.is_empty() => {
                write!(f, "mlp{}", suffix(activation))
            }
            ModelSpec::Mlp { hidden, activation } => {
                write!(f, "mlp{}:{}", suffix(activation), list(hidden))
            }
            ModelSpec::Cnn { widths, activation } if widths[..] == CNN_DEFAULT_WIDTHS => {
                write!(f, "cnn{}", suffix(activation))
            }
            ModelSpec::Cnn { widths, activation } => {
                write!(f, "cnn{}:{}", suffix(activation), list(widths))
            }
            ModelSpec::ResNet { depth, normed } => {
                write!(f, "resnet{depth}{}", if *normed { "-normed" } else { "" })
            }
        }
    }
}

impl TryFrom<String> for ModelSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<ModelSpec> for String {
    fn from(spec: ModelSpec) -> String {
        spec.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for text in [
            "mlp",
            "mlp:256,128",
            "mlp-tanh:5,4",
            "cnn",
            "cnn:2,3",
            "cnn-tanh",
            "resnet32",
            "resnet8-normed",
        ] {
            let spec: ModelSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        }
        assert_eq!("cnn:16,32".parse::<ModelSpec>().unwrap(), ModelSpec::cnn());
        assert_eq!(
            "resnet32".parse::<ModelSpec>().unwrap(),
            ModelSpec::resnet32()
        );
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for (text, needle) in [
            ("mlp:0", "width \"0\""),
            ("mlp:a", "width \"a\""),
            ("resnet33", "6n+2"),
            ("resnet32-tanh", "unknown architecture"),
            ("resnet32:4", "no widths"),
            ("vgg", "unknown architecture"),
        ] {
            let err = text.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(text), "{text}: {err}");
        }
    }
}
