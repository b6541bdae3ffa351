//! What every class-wise Hessian of one subject shares: the model in the analysis dtype, the
//! parameter block, the loss and how a class's samples are batched. The analysis and the
//! loss landscapes both build their operators here, so a landscape is taken of exactly the
//! Hessian whose spectrum the analysis reports.

use saddlescope_data::{BatchSpec, Split};
use saddlescope_nn::{Batch, BnMode, HessianOperator, Loss, LossSpec, Model, ParamSelection};

use crate::analyze::{AnalyzeParams, HessianLoss, Subject};
use crate::operator::{ClassHessian, HvpSettings};
use crate::{Error, Param};

/// The shared pieces, checked against the subject.
pub(crate) struct HessianSetup<'a> {
    original: &'a Model,
    /// The model converted to the analysis dtype, when it was in another one.
    converted: Option<Model>,
    split: &'a Split,
    samples_per_class: Option<usize>,
    selection: ParamSelection,
    loss: Loss,
    spec: BatchSpec,
    hvp: HvpSettings,
}

impl<'a> HessianSetup<'a> {
    /// Checks the settings ([`AnalyzeParams::validate`]) and the class count, converts the
    /// model to `params.dtype`, selects the parameter block and builds the loss.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the setting (`batch_size`, `dataset`, `loss`, ...),
    /// [`Error::Settings`]; model errors.
    pub(crate) fn new(subject: &Subject<'a>, params: &AnalyzeParams) -> Result<Self, Error> {
        params.validate()?;
        let classes = subject.model.classes();
        if subject.split.classes() != classes {
            return Err(Error::Invalid {
                param: Param::Dataset,
                reason: format!(
                    "the data set has {} classes but the checkpoint {}",
                    subject.split.classes(),
                    classes
                ),
            });
        }
        let converted = if subject.model.dtype() == params.dtype {
            None
        } else {
            Some(subject.model.to_dtype(params.dtype)?)
        };
        let model = converted.as_ref().unwrap_or(subject.model);
        let selection = if params.param_filter.is_empty() {
            ParamSelection::all(model)
        } else {
            ParamSelection::with_prefixes(model, &params.param_filter)?
        };
        let loss = match params.loss {
            HessianLoss::Ce => LossSpec::Ce.build(&vec![1; classes], None)?,
            HessianLoss::Train => subject.training_loss.clone().ok_or_else(|| Error::Invalid {
                param: Param::Loss,
                reason: "`train` needs a saddlescope checkpoint (its metadata says which loss it was trained with)".into(),
            })?,
        };
        let spec =
            BatchSpec::new(params.batch_size, model.device().clone()).with_dtype(params.dtype);
        Ok(Self {
            original: subject.model,
            converted,
            split: subject.split,
            samples_per_class: params.samples_per_class,
            selection,
            loss,
            spec,
            hvp: params.hvp,
        })
    }

    /// The model in the analysis dtype (a converted copy, or the subject's own model).
    pub(crate) fn model(&self) -> &Model {
        self.converted.as_ref().unwrap_or(self.original)
    }

    /// The loss whose Hessians are taken.
    pub(crate) fn loss(&self) -> &Loss {
        &self.loss
    }

    /// How many samples of class `c` its Hessian is over: the first `samples_per_class`, or
    /// all (0 when the split has none).
    pub(crate) fn class_samples(&self, c: usize) -> Result<usize, Error> {
        let available = self.split.class_indices(c)?.len();
        Ok(self
            .samples_per_class
            .map_or(available, |n| n.min(available)))
    }

    /// The samples of class `c` (the first `samples_per_class` in data-set order, or all),
    /// in batches of the analysis dtype; empty when the split has none.
    pub(crate) fn class_batches(&self, c: usize) -> Result<Vec<Batch>, Error> {
        self.batches_of(self.split, c, self.samples_per_class)
    }

    /// The first `limit` samples of class `c` of `split` (all for `None`), in batches of the
    /// analysis dtype; empty when the split has none.
    pub(crate) fn batches_of(
        &self,
        split: &Split,
        c: usize,
        limit: Option<usize>,
    ) -> Result<Vec<Batch>, Error> {
        split
            .class_batches(c, limit, &self.spec)?
            .map(|b| {
                let (x, y) = b?;
                Ok(Batch::new(x, y)?)
            })
            .collect()
    }

    /// The Hessian of the mean loss over `batches` on the parameter block, eval-mode BN (the
    /// running statistics, as PyHessian and the paper's code).
    pub(crate) fn operator(&self, batches: Vec<Batch>) -> Result<ClassHessian<'_>, Error> {
        Ok(ClassHessian::new(self.hvp.apply(HessianOperator::new(
            self.model(),
            batches,
            self.loss.clone(),
            self.selection.clone(),
            BnMode::Eval,
        )?)))
    }
}
