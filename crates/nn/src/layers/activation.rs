//! Elementwise activations.
//!
//! - ReLU: `y = max(x, 0)`, tangent `1[x ≥ 0]·ẋ` with the mask a constant from the
//!   detached primal ([`Value::relu`]);
//! - tanh: `y = tanh x`, tangent `(1 − y²)·ẋ` ([`Value::tanh`]), smooth, used by the
//!   Hessian tests where central differences must be exact everywhere.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::value::Value;

/// The hidden-layer nonlinearity of the MLP and the small CNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)` (the default).
    Relu,
    /// `tanh(x)`: smooth, so its Hessian has no kinks.
    Tanh,
}

impl Activation {
    /// Applies the activation elementwise.
    pub fn apply<V: Value>(self, x: &V) -> Result<V> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
        }
    }
}
