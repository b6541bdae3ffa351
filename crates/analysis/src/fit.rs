//! What the model gets right on a sample set: the accuracy next to a class loss.

use candle_core::D;
use saddlescope_nn::{Batch, BnMode, Model};

use crate::Error;

/// How many samples of `batches` the model classifies correctly (arg-max of the logits,
/// eval-mode BN, as every loss and Hessian of the analysis sees the model).
///
/// # Errors
/// Model errors (inputs the model rejects).
pub(crate) fn correct_predictions(model: &Model, batches: &[Batch]) -> Result<usize, Error> {
    let mut correct = 0;
    for batch in batches {
        let predicted: Vec<u32> = model
            .forward(batch.x(), BnMode::Eval)?
            .argmax(D::Minus1)?
            .to_vec1()?;
        let labels: Vec<u32> = batch.labels().to_vec1()?;
        correct += predicted
            .iter()
            .zip(&labels)
            .filter(|(p, y)| p == y)
            .count();
    }
    Ok(correct)
}
