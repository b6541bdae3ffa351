//! `k` flat direction vectors as one tensor per selected parameter with a leading direction
//! axis, and back: the layout of a multi-direction HVP.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::selection::ParamSelection;

/// Values per parallel piece when converting between f64 vectors and tensors.
const CONVERT_PIECE: usize = 1 << 14;

/// One tensor `(k, *shape)` per selected parameter from `k` flat vectors (each of the
/// selection's dimension), in `dtype` on `device`.
pub(crate) fn split_block(
    selection: &ParamSelection,
    vs: &[&[f64]],
    dtype: DType,
    device: &Device,
) -> Result<Vec<Tensor>> {
    selection
        .entries()
        .iter()
        .map(|e| {
            let mut shape = vec![vs.len()];
            shape.extend_from_slice(&e.shape);
            let pieces = vs.iter().map(|v| &v[e.offset..e.offset + e.len]);
            Ok(match dtype {
                DType::F32 => {
                    let mut values = Vec::with_capacity(vs.len() * e.len);
                    for piece in pieces {
                        values.par_extend(
                            piece
                                .par_iter()
                                .with_min_len(CONVERT_PIECE)
                                .map(|&x| x as f32),
                        );
                    }
                    Tensor::from_vec(values, shape, device)?
                }
                _ => {
                    let values: Vec<f64> = pieces.flatten().copied().collect();
                    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?
                }
            })
        })
        .collect()
}

/// `outs[j] += share · blocks[·][j]`, flattened in selection order: the inverse of
/// [`split_block`], accumulated.
pub(crate) fn join_block(
    selection: &ParamSelection,
    blocks: &[Tensor],
    share: f64,
    outs: &mut [&mut [f64]],
) -> Result<()> {
    if blocks.len() != selection.entries().len() {
        return Err(Error::ParamCount {
            expected: selection.entries().len(),
            got: blocks.len(),
        });
    }
    for (block, e) in blocks.iter().zip(selection.entries()) {
        let expected: Vec<usize> = [outs.len()].into_iter().chain(e.shape.clone()).collect();
        if block.dims() != expected {
            return Err(Error::ParamShape {
                name: e.name.clone(),
                expected,
                got: block.dims().to_vec(),
            });
        }
        let flat = block.flatten_all()?;
        let values: Vec<f64> = match flat.dtype() {
            DType::F32 => flat.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
            _ => flat.to_dtype(DType::F64)?.to_vec1::<f64>()?,
        };
        for (out, piece) in outs.iter_mut().zip(values.chunks_exact(e.len.max(1))) {
            let dst = &mut out[e.offset..e.offset + e.len];
            for (o, h) in dst.iter_mut().zip(piece) {
                *o += share * h;
            }
        }
    }
    Ok(())
}
