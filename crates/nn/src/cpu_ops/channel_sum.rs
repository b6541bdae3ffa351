//! `s[c] = Σ g[n, c, …]`: the sum over every axis but axis 1, the gradient of a per-channel
//! (per-column) shift that was broadcast over the others: a convolution's bias or a linear
//! layer's. Its own gradient broadcasts back, so derivatives of every order stay exact.

use candle_core::{bail, Result, Shape, Tensor, WithDType};

use super::custom::{apply1, Arg, CpuOp};

/// `Σ_{n, …} g[n, c, …]` of `g: (N, C, …)` (at least 2 dimensions) as a `(C,)` tensor, on
/// the CPU, f32 or f64, summed in a fixed order.
pub(crate) fn channel_sum(g: &Tensor) -> Result<Tensor> {
    apply1(ChannelSum, g)
}

/// `Σ_{n, p} y[n, c, p]` for contiguous `y: (n, c, pixels)`, sample after sample, each
/// sample's pixels summed first.
pub(crate) fn channel_sums<T: WithDType>(y: &[T], [n, c, pixels]: [usize; 3]) -> Result<Vec<T>> {
    if y.len() != n * c * pixels {
        bail!("channel sum: {} values, expected {n}x{c}x{pixels}", y.len())
    }
    let mut out = vec![T::from_f64(0.0); c];
    for sample in y.chunks_exact((c * pixels).max(1)) {
        for (o, row) in out.iter_mut().zip(sample.chunks_exact(pixels.max(1))) {
            *o += row.iter().fold(T::from_f64(0.0), |acc, &v| acc + v);
        }
    }
    Ok(out)
}

struct ChannelSum;

impl CpuOp<1> for ChannelSum {
    const NAME: &'static str = "saddlescope-channel-sum";

    fn run<T: WithDType>(&self, [g]: [Arg<'_, T>; 1]) -> Result<(Vec<T>, Shape)> {
        let &[n, c, ref rest @ ..] = g.dims() else {
            bail!(
                "{}: shape {:?}, expected at least 2 dimensions",
                Self::NAME,
                g.dims()
            )
        };
        let sums = channel_sums(&g.dense()?, [n, c, rest.iter().product()])?;
        Ok((sums, Shape::from(c)))
    }

    fn backward(
        &self,
        [arg]: [&Tensor; 1],
        _sums: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 1]> {
        let mut dims = vec![1; arg.rank()];
        dims[1] = grad.elem_count();
        Ok([Some(grad.reshape(dims)?.broadcast_as(arg.shape())?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Sums and the gradient's broadcast equal candle's `sum` over the other axes, for 2-d
    /// and 4-d arguments (f64, exact: small integers).
    #[test]
    fn matches_candle_sum_with_gradient() {
        for dims in [vec![3, 4], vec![2, 3, 4, 5]] {
            let len: usize = dims.iter().product();
            let values: Vec<f64> = (0..len).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let g = Var::from_vec(values, dims.as_slice(), &Device::Cpu).unwrap();
            let axes: Vec<usize> = (0..dims.len()).filter(|&a| a != 1).collect();
            let theirs = g.as_tensor().sum(axes.as_slice()).unwrap();
            let ours = channel_sum(g.as_tensor()).unwrap();
            let weights = Tensor::arange(1.0, 1.0 + dims[1] as f64, &Device::Cpu).unwrap();
            let grad = |s: &Tensor| {
                let d = s.mul(&weights).unwrap().sum_all().unwrap().backward();
                let d = d.unwrap().get(g.as_tensor()).unwrap().clone();
                d.flatten_all().unwrap().to_vec1::<f64>().unwrap()
            };
            assert_eq!(
                ours.to_vec1::<f64>().unwrap(),
                theirs.to_vec1::<f64>().unwrap()
            );
            assert_eq!(grad(&ours), grad(&theirs));
        }
        let scalar = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
        assert!(channel_sum(&scalar).is_err());
    }
}
