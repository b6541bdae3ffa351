//! ResNet "option A" shortcut of the CIFAR reference code (He et al. 2016, §4.2):
//! `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4))`.
//!
//! `(N, C, H, W) → (N, C + 2p, ⌈H/2⌉, ⌈W/2⌉)` with `p = planes/4`: every second row and
//! column, then `p` zero channels on each side. Parameter-free and linear, so the tangent
//! is the same map of the input tangent ([`LinearOp::ShortcutA`]).

use crate::error::Result;
use crate::linear_op::LinearOp;
use crate::value::Value;

/// Option-A shortcut to a block with `planes` output channels and stride 2.
pub(crate) fn shortcut_a<V: Value>(x: &V, planes: usize) -> Result<V> {
    x.map(&LinearOp::ShortcutA { pad: planes / 4 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Matches `F.pad(x[:, :, ::2, ::2], (0,0,0,0,1,1))` written out by hand, odd sides too.
    #[test]
    fn subsamples_and_pads_channels() {
        let x = Tensor::arange(0.0f64, 15.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 5))
            .unwrap();
        let y: Tensor = shortcut_a(&x, 4).unwrap();
        assert_eq!(y.dims(), &[1, 3, 2, 3]);
        let y: Vec<Vec<Vec<f64>>> = y.squeeze(0).unwrap().to_vec3().unwrap();
        assert_eq!(y[1], vec![vec![0.0, 2.0, 4.0], vec![10.0, 12.0, 14.0]]);
        assert_eq!(y[0], vec![vec![0.0; 3]; 2]);
        assert_eq!(y[2], vec![vec![0.0; 3]; 2]);
    }
}
