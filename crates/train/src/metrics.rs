//! Test-set evaluation: loss, overall accuracy, per-class accuracy and the head/medium/tail
//! group accuracies the long-tail literature reports.

use candle_core::DType;
use saddlescope_data::{BatchSpec, Split};
use saddlescope_nn::{BnMode, LossSpec, Model};
use saddlescope_results::{EvalMetrics, Group, GroupAccuracy};

use crate::Error;

/// Batch size of evaluation passes (memory, not results, depends on it).
const EVAL_BATCH: usize = 500;

/// Evaluates `model` (eval-mode BN) on every sample of `split`; `groups[c]` is class c's group.
pub fn evaluate(model: &Model, split: &Split, groups: &[Group]) -> Result<EvalMetrics, Error> {
    let classes = model.classes();
    let loss = LossSpec::Ce.build(&vec![1; classes], None)?;
    let spec = BatchSpec::new(EVAL_BATCH, model.device().clone()).with_dtype(model.dtype());
    let (mut correct, mut seen) = (vec![0usize; classes], vec![0usize; classes]);
    let mut loss_sum = 0.0;
    for batch in split.batches(&spec)? {
        let (images, labels) = batch?;
        let logits = model.forward(&images, BnMode::Eval)?;
        let batch_loss: f64 = loss
            .compute(&logits, &labels)?
            .to_dtype(DType::F64)?
            .to_scalar()?;
        let predicted: Vec<u32> = logits.argmax(1)?.to_vec1()?;
        let truth: Vec<u32> = labels.to_vec1()?;
        loss_sum += batch_loss * truth.len() as f64;
        for (&p, &y) in predicted.iter().zip(&truth) {
            seen[y as usize] += 1;
            correct[y as usize] += usize::from(p == y);
        }
    }
    let total: usize = seen.iter().sum();
    if total == 0 {
        return Err(Error::Bug("evaluation split is empty".into()));
    }
    let class_accuracy: Vec<f64> = correct
        .iter()
        .zip(&seen)
        .map(|(&c, &n)| c as f64 / n.max(1) as f64)
        .collect();
    if let Some(class) = seen.iter().position(|&n| n == 0) {
        return Err(Error::Bug(format!(
            "class {class} has no evaluation samples"
        )));
    }
    let group_mean = |group: Group| {
        let values: Vec<f64> = (0..classes)
            .filter(|&c| groups.get(c) == Some(&group) && seen[c] > 0)
            .map(|c| class_accuracy[c])
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let group_accuracy = GroupAccuracy {
        head: group_mean(Group::Head),
        medium: group_mean(Group::Medium),
        tail: group_mean(Group::Tail),
    };
    Ok(EvalMetrics {
        loss: loss_sum / total as f64,
        accuracy: correct.iter().sum::<usize>() as f64 / total as f64,
        class_accuracy,
        group_accuracy,
    })
}
