//! A block of parameters (by name prefix) and flat-vector views of it.
//!
//! The Hessian of a block `S` is `H_SS`; its dimension `n` is the number of selected
//! scalars. Flat vectors are `f64`, in [`Model::trainable`] order, each tensor row-major.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::Model;

/// Values per parallel piece when converting between flat f64 vectors and f32 tensors.
const CONVERT_PIECE: usize = 1 << 14;

/// One selected parameter tensor and its slice of the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedParam {
    /// Position in [`Model::trainable`].
    pub index: usize,
    /// The parameter's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Offset of its first scalar in the flat vector.
    pub offset: usize,
    /// Number of scalars.
    pub len: usize,
}

/// An ordered set of a model's parameters: all of them, or those whose names start with
/// given prefixes (`linear.` is the classifier head of every model, `layer3.` the last
/// ResNet stage).
///
/// ```
/// use candle_core::{DType, Device};
/// use saddlescope_nn::{Model, ParamSelection};
/// let model = Model::new(&"mlp:4".parse()?, 3, [1, 1, 2], DType::F64, &Device::Cpu, 0)?;
/// let head = ParamSelection::with_prefixes(&model, &["linear."])?;
/// assert_eq!(head.dim(), 4 * 3 + 3);
/// assert_eq!(head.entries()[1].name, "linear.bias");
/// assert_eq!(head.entries()[1].offset, 12);
/// # Ok::<(), saddlescope_nn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSelection {
    entries: Vec<SelectedParam>,
    dim: usize,
}

impl ParamSelection {
    /// Every trainable parameter.
    pub fn all(model: &Model) -> Self {
        Self::filtered(model, |_| true)
    }

    /// The parameters whose names start with any of `prefixes`; an empty list selects
    /// all. Errors if a prefix matches no parameter (a typo would otherwise select an
    /// empty or smaller block silently).
    pub fn with_prefixes<S: AsRef<str>>(model: &Model, prefixes: &[S]) -> Result<Self> {
        if prefixes.is_empty() {
            return Ok(Self::all(model));
        }
        for prefix in prefixes {
            let prefix = prefix.as_ref();
            if !model
                .trainable()
                .iter()
                .any(|(name, _)| name.starts_with(prefix))
            {
                return Err(Error::UnknownPrefix {
                    prefix: prefix.to_string(),
                    example: model
                        .trainable()
                        .last()
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(Self::filtered(model, |name| {
            prefixes.iter().any(|p| name.starts_with(p.as_ref()))
        }))
    }

    fn filtered(model: &Model, keep: impl Fn(&str) -> bool) -> Self {
        let mut entries = Vec::new();
        let mut offset = 0;
        for (index, (name, var)) in model.trainable().iter().enumerate() {
            if keep(name) {
                let len = var.elem_count();
                entries.push(SelectedParam {
                    index,
                    name: name.clone(),
                    shape: var.dims().to_vec(),
                    offset,
                    len,
                });
                offset += len;
            }
        }
        Self {
            entries,
            dim: offset,
        }
    }

    /// Number of selected scalars: the Hessian block's dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The selected parameters, in model order.
    pub fn entries(&self) -> &[SelectedParam] {
        &self.entries
    }

    /// Errors unless this selection's names and shapes are `model`'s.
    pub(crate) fn check_model(&self, model: &Model) -> Result<()> {
        for e in &self.entries {
            match model.trainable().get(e.index) {
                Some((name, var)) if *name == e.name && var.dims() == e.shape => {}
                Some((name, var)) => {
                    return Err(Error::ParamShape {
                        name: format!("{} (selection) / {name} (model)", e.name),
                        expected: var.dims().to_vec(),
                        got: e.shape.clone(),
                    })
                }
                None => {
                    return Err(Error::ParamCount {
                        expected: model.trainable().len(),
                        got: e.index + 1,
                    })
                }
            }
        }
        Ok(())
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got != self.dim() {
            return Err(Error::FlatLength {
                expected: self.dim(),
                got,
            });
        }
        Ok(())
    }

    /// The selected parameters' current values as one flat vector.
    pub fn values(&self, model: &Model) -> Result<Vec<f64>> {
        self.check_model(model)?;
        let tensors: Vec<Tensor> = self
            .entries
            .iter()
            .map(|e| model.trainable()[e.index].1.as_detached_tensor())
            .collect();
        self.join(&tensors)
    }

    /// Splits a flat vector into one tensor per selected parameter, in `dtype` on `device`.
    /// Each piece is converted once, straight from `flat` (an HVP splits its direction on
    /// every call: for a 200k-parameter MLP, staging the whole vector as an f64 tensor
    /// first cost ~5% of the HVP).
    pub fn split(&self, flat: &[f64], dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
        self.check_len(flat.len())?;
        self.entries
            .iter()
            .map(|e| {
                let values = &flat[e.offset..e.offset + e.len];
                let shape = e.shape.as_slice();
                Ok(match dtype {
                    DType::F32 => {
                        let narrow: Vec<f32> = values
                            .par_iter()
                            .with_min_len(CONVERT_PIECE)
                            .map(|&x| x as f32)
                            .collect();
                        Tensor::from_vec(narrow, shape, device)?
                    }
                    _ => Tensor::from_slice(values, shape, device)?.to_dtype(dtype)?,
                })
            })
            .collect()
    }

    /// Joins one tensor per selected parameter (any float dtype) into a flat vector.
    pub fn join(&self, tensors: &[Tensor]) -> Result<Vec<f64>> {
        if tensors.len() != self.entries.len() {
            return Err(Error::ParamCount {
                expected: self.entries.len(),
                got: tensors.len(),
            });
        }
        for (t, e) in tensors.iter().zip(&self.entries) {
            if t.dims() != e.shape {
                return Err(Error::ParamShape {
                    name: e.name.clone(),
                    expected: e.shape.clone(),
                    got: t.dims().to_vec(),
                });
            }
        }
        // One copy out of each tensor, widened on the way (no f64 staging tensors, no cat).
        let mut flat = Vec::with_capacity(self.dim());
        for t in tensors {
            let t = t.detach().flatten_all()?;
            match t.dtype() {
                DType::F32 => {
                    let values = t.to_vec1::<f32>()?;
                    flat.par_extend(
                        values
                            .par_iter()
                            .with_min_len(CONVERT_PIECE)
                            .map(|&x| f64::from(x)),
                    );
                }
                _ => flat.extend(t.to_dtype(DType::F64)?.to_vec1::<f64>()?),
            }
        }
        Ok(flat)
    }
}
