//! Average pooling (linear maps, so tangents are pooled the same way).
//!
//! - `avg_pool2`: 2×2 windows, stride 2, `(N, C, H, W) → (N, C, ⌊H/2⌋, ⌊W/2⌋)`;
//! - `global_avg_pool`: mean over `H, W`, `(N, C, H, W) → (N, C)`, which is the reference
//!   ResNet's `F.avg_pool2d(out, out.size()[3])` on its square feature maps.

use crate::error::Result;
use crate::linear_op::LinearOp;
use crate::value::Value;

/// 2×2 average pooling with stride 2.
pub(crate) fn avg_pool2<V: Value>(x: &V) -> Result<V> {
    x.map(&LinearOp::AvgPool2)
}

/// Mean over the spatial dimensions.
pub(crate) fn global_avg_pool<V: Value>(x: &V) -> Result<V> {
    x.map(&LinearOp::SpatialMean)
}
