//! Which Hessians an analysis estimates, fixed before the first one starts, and which of them
//! a shard (`--shard I/N`) takes. Each class costs its sample count; the all-classes Hessian
//! the sum over every class (it is the most expensive single item, and the partition gives
//! it a shard of its own when N ≥ 2). Every shard plans the whole analysis from the labels
//! alone, so all shards agree on the partition without talking to each other.

use candle_core::{Device, Tensor};
use saddlescope_results::{
    write_manifest, AnalysisDir, AnalysisPlan, AnalysisReport, PlannedHessian, Shard,
    ShardManifest, SkippedClass,
};

use crate::setup::HessianSetup;
use crate::{AnalysisObserver, Error, Param};

/// The plan of an analysis of `class_ids` (and `all` when `include_all`), with the classes
/// that have no samples in the split, which are skipped (and the observer told).
///
/// # Errors
/// [`Error::Invalid`] naming `class_ids` for a class that does not exist or is listed
/// twice; data and loss errors.
pub(crate) fn plan(
    setup: &HessianSetup<'_>,
    split_name: &str,
    class_ids: &[usize],
    include_all: bool,
    observer: &dyn AnalysisObserver,
) -> Result<(AnalysisPlan, Vec<SkippedClass>), Error> {
    let classes = setup.model().classes();
    let mut listed = vec![false; classes];
    for &c in class_ids {
        let reason = match listed.get(c) {
            None => format!("class {c} does not exist (the checkpoint has {classes} classes)"),
            Some(true) => format!("class {c} is listed twice"),
            Some(false) => {
                listed[c] = true;
                continue;
            }
        };
        return Err(Error::Invalid {
            param: Param::ClassIds,
            reason,
        });
    }
    let sizes = (0..classes)
        .map(|c| class_size(setup, c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hessians = Vec::new();
    let mut skipped = Vec::new();
    for &c in class_ids {
        let planned = &sizes[c];
        if planned.samples == 0 {
            let reason = format!("no samples of class {c} in the {split_name} split");
            observer.notice(&format!("skipping class {c}: {reason}"));
            skipped.push(SkippedClass { class: c, reason });
        } else {
            hessians.push(planned.clone());
        }
    }
    if include_all {
        hessians.push(PlannedHessian {
            class: None,
            samples: sizes.iter().map(|s| s.samples).sum(),
            weight: sizes.iter().map(|s| s.weight).sum(),
        });
    }
    let trace_identity = include_all && skipped.is_empty() && listed.iter().all(|&l| l);
    Ok((
        AnalysisPlan {
            hessians,
            trace_identity,
        },
        skipped,
    ))
}

/// Class `c`'s sample count and summed loss weight, from its labels (no images are batched).
fn class_size(setup: &HessianSetup<'_>, c: usize) -> Result<PlannedHessian, Error> {
    let samples = setup.class_samples(c)?;
    let weight = if samples == 0 {
        0.0
    } else {
        let labels = Tensor::from_vec(vec![c as u32; samples], samples, &Device::Cpu)?;
        setup.loss().batch_weight(&labels)?
    };
    Ok(PlannedHessian {
        class: Some(c),
        samples,
        weight,
    })
}

/// The positions in `plan` of the Hessians this run estimates: all of them, or the ones of
/// `shard`, whose manifest (`shard.json`: the shard, the plan and the report's
/// per-analysis fields in `header`) is written first so that `merge` can check it.
///
/// # Errors
/// The manifest's write error.
pub(crate) fn positions(
    plan: &AnalysisPlan,
    shard: Option<Shard>,
    header: &AnalysisReport,
    dir: &AnalysisDir,
    observer: &dyn AnalysisObserver,
) -> Result<Vec<usize>, Error> {
    let Some(shard) = shard else {
        return Ok((0..plan.hessians.len()).collect());
    };
    let manifest = ShardManifest {
        shard,
        plan: plan.clone(),
        header: header.clone(),
    };
    write_manifest(dir, &manifest)?;
    let positions = manifest.hessians();
    let samples: usize = positions.iter().map(|&i| plan.hessians[i].samples).sum();
    let total: usize = plan.hessians.iter().map(|h| h.samples).sum();
    observer.notice(&if positions.is_empty() {
        format!(
            "shard {shard} has no Hessians to estimate (the analysis has {} for {} shards)",
            plan.hessians.len(),
            shard.count()
        )
    } else {
        format!(
            "shard {shard}: {} ({samples} of {total} samples)",
            plan.labels(&positions)
        )
    });
    Ok(positions)
}
