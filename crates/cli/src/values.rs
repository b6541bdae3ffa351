//! The closed sets of flag values, as clap `ValueEnum`s: clap lists them in `--help` and
//! rejects anything else while parsing (a one-line usage error, exit 2). Each converts into
//! the library type it stands for.

use candle_core::DType;
use clap::ValueEnum;
use saddlescope_analysis::HessianLoss;
use saddlescope_data::Imbalance;
use saddlescope_nn::HvpEngine;
use saddlescope_plot::{Format, XScale};
use saddlescope_spectral::BasisPrecision;

use crate::error::usage;

/// A parsed flag value that keeps the text it was parsed from, for outputs that record what
/// the user typed.
#[derive(Debug, Clone)]
pub struct Spelled<T> {
    /// The text as given.
    pub text: String,
    /// The parsed value.
    pub value: T,
}

impl<T: std::str::FromStr> std::str::FromStr for Spelled<T> {
    type Err = T::Err;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            text: text.to_string(),
            value: text.parse()?,
        })
    }
}

/// `--device`: where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// Opens the device.
    ///
    /// # Errors
    /// A usage error naming `--device cuda` when this build has no CUDA support; an error
    /// when no GPU answers.
    pub fn open(self) -> anyhow::Result<candle_core::Device> {
        match self {
            DeviceArg::Cpu => Ok(candle_core::Device::Cpu),
            DeviceArg::Cuda if cfg!(feature = "cuda") => {
                candle_core::Device::new_cuda(0).map_err(|e| {
                    // The driver's words, without the backtrace candle attaches under
                    // RUST_BACKTRACE, on one line.
                    let e = match e {
                        candle_core::Error::WithBacktrace { inner, .. } => *inner,
                        e => e,
                    };
                    let reason = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    anyhow::anyhow!("--device cuda: no usable GPU or driver ({reason})")
                })
            }
            DeviceArg::Cuda => Err(usage(
                "--device cuda: this build has no CUDA support; rebuild with `just cuda-build` (README: CUDA)",
            )),
        }
    }
}

/// `--dtype`: the element type of weights or HVPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FloatArg {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl FloatArg {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            FloatArg::F32 => DType::F32,
            FloatArg::F64 => DType::F64,
        }
    }

    /// `"f32"` or `"f64"`, as recipes and JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FloatArg::F32 => "f32",
            FloatArg::F64 => "f64",
        }
    }
}

/// `bench --engine`: how Hessian-vector products are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The pass recorded once per Hessian, tangent passes per product.
    Linearized,
    /// Reverse-over-forward from scratch every product.
    Plain,
}

impl From<EngineArg> for HvpEngine {
    fn from(engine: EngineArg) -> Self {
        match engine {
            EngineArg::Linearized => HvpEngine::Linearized,
            EngineArg::Plain => HvpEngine::Plain,
        }
    }
}

/// `--basis`: how Lanczos basis vectors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// 64-bit floats: Ritz values to rounding.
    F64,
    /// 32-bit floats: half the memory and traffic, Ritz values to ~1e-7 relative.
    F32,
}

impl From<BasisArg> for BasisPrecision {
    fn from(basis: BasisArg) -> Self {
        match basis {
            BasisArg::F64 => BasisPrecision::F64,
            BasisArg::F32 => BasisPrecision::F32,
        }
    }
}

/// `--split`: which samples define the class losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The long-tailed subset the model was trained on.
    Train,
    /// The whole test split.
    Test,
}

impl SplitArg {
    /// `"train"` or `"test"`, as the outputs name the split.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Test => "test",
        }
    }
}

/// `analyze --loss`: whose Hessian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HessianLossArg {
    /// Plain cross-entropy, as the paper.
    Ce,
    /// The checkpoint's training loss.
    Train,
}

impl From<HessianLossArg> for HessianLoss {
    fn from(loss: HessianLossArg) -> Self {
        match loss {
            HessianLossArg::Ce => HessianLoss::Ce,
            HessianLossArg::Train => HessianLoss::Train,
        }
    }
}

/// `--imbalance`: the long-tail profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImbalanceArg {
    /// Exponential: n_i = floor(n_max * (1/ratio)^(i/(C-1))).
    Exp,
    /// Step: half the classes keep n_max, the rest floor(n_max/ratio).
    Step,
    /// Every class n_max.
    #[value(name = "none")]
    Flat,
}

impl From<ImbalanceArg> for Imbalance {
    fn from(imbalance: ImbalanceArg) -> Self {
        match imbalance {
            ImbalanceArg::Exp => Imbalance::Exp,
            ImbalanceArg::Step => Imbalance::Step,
            ImbalanceArg::Flat => Imbalance::None,
        }
    }
}

/// `plot --format`: the image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// PNG raster images.
    Png,
    /// SVG vector images.
    Svg,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Png => Format::Png,
            FormatArg::Svg => Format::Svg,
        }
    }
}

/// `--xscale`: the eigenvalue axis of density figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XScaleArg {
    /// Linear.
    Linear,
    /// Linear near 0, logarithmic beyond.
    Symlog,
}

impl From<XScaleArg> for XScale {
    fn from(scale: XScaleArg) -> Self {
        match scale {
            XScaleArg::Linear => XScale::Linear,
            XScaleArg::Symlog => XScale::Symlog,
        }
    }
}
