//! The networks, each written once over [`Value`](crate::Value).

mod cnn;
mod mlp;
mod resnet;
mod spec;

pub(crate) use cnn::Cnn;
pub(crate) use mlp::Mlp;
pub(crate) use resnet::ResNet;
pub use spec::ModelSpec;
