//! Layers, one per file, each generic over [`Value`](crate::Value) with its tangent rule
//! documented beside its forward.

mod activation;
mod batch_norm;
mod conv;
mod linear;
mod normed_linear;
mod pool;
mod shortcut;

pub use activation::Activation;
pub(crate) use batch_norm::{BatchNorm2d, ResidualLayers, Then};
pub(crate) use conv::Conv2d;
pub(crate) use linear::Linear;
pub(crate) use normed_linear::NormedLinear;
pub(crate) use pool::{avg_pool2, global_avg_pool};
pub(crate) use shortcut::shortcut_a;
