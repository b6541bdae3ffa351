//! Reading the result structs for drawing: labels, head → tail order, panel selection and
//! the checks that keep NaNs and empty densities out of plotters.

use std::path::Path;

use saddlescope_results::{AnalysisReport, ClassSpectrum};

use crate::axis::format_number;
use crate::error::Error;

/// A result with the label it is drawn under (`"CE+DRW"`, `"CE+DRW+SAM"`).
#[derive(Debug)]
pub struct Labeled<'a, T: ?Sized> {
    /// Legend label.
    pub label: &'a str,
    /// The result.
    pub value: &'a T,
}

impl<'a, T: ?Sized> Labeled<'a, T> {
    /// `value` under `label`.
    pub fn new(label: &'a str, value: &'a T) -> Self {
        Self { label, value }
    }
}

impl<T: ?Sized> Clone for Labeled<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Labeled<'_, T> {}

/// Classes ordered head → tail: train count descending, ties by class index.
pub(crate) fn head_to_tail(classes: &[ClassSpectrum]) -> Vec<&ClassSpectrum> {
    let mut order: Vec<&ClassSpectrum> = classes.iter().collect();
    order.sort_by_key(|c| (std::cmp::Reverse(c.train_count), c.class));
    order
}

/// The report's classes head → tail.
///
/// # Errors
/// [`Error::Empty`] when it has none.
pub(crate) fn ordered_classes<'a>(
    report: &'a AnalysisReport,
    path: &Path,
) -> Result<Vec<&'a ClassSpectrum>, Error> {
    let ordered = head_to_tail(&report.classes);
    if ordered.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "the analysis has no classes".into(),
        });
    }
    Ok(ordered)
}

/// The classes of `a` (head → tail by `a`'s counts) paired with `b`'s class of the same index.
///
/// # Errors
/// [`Error::Empty`] when no class is in both.
pub(crate) fn matched_classes<'a>(
    a: Labeled<'a, AnalysisReport>,
    b: Labeled<'a, AnalysisReport>,
    path: &Path,
) -> Result<Vec<(&'a ClassSpectrum, &'a ClassSpectrum)>, Error> {
    let pairs: Vec<_> = head_to_tail(&a.value.classes)
        .into_iter()
        .filter_map(|ca| {
            b.value
                .classes
                .iter()
                .find(|cb| cb.class == ca.class)
                .map(|cb| (ca, cb))
        })
        .collect();
    if pairs.is_empty() {
        let what = format!("no class is in both {} and {}", a.label, b.label);
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(pairs)
}

/// At most `max` items, evenly spaced in order, first and last included.
pub(crate) fn spread<T: Copy>(items: &[T], max: usize) -> Vec<T> {
    let n = items.len();
    if n <= max || max == 0 {
        return items.to_vec();
    }
    if max == 1 {
        return vec![items[0]];
    }
    (0..max)
        .map(|i| items[(i * (n - 1) + (max - 1) / 2) / (max - 1)])
        .collect()
}

/// `class 3` for a numeric name, the name itself otherwise (`airplane`), `all classes`
/// for the all-classes Hessian.
pub(crate) fn class_label(c: &ClassSpectrum) -> String {
    if c.class.is_none() {
        "all classes".into()
    } else if c.name.parse::<f64>().is_ok() {
        format!("class {}", c.name)
    } else {
        c.name.clone()
    }
}

/// `n = 5000 · head`, or `n = 5000` without a group.
pub(crate) fn count_and_group(c: &ClassSpectrum) -> String {
    match c.group {
        Some(g) => format!("n = {} · {g}", c.train_count),
        None => format!("n = {}", c.train_count),
    }
}

/// `λ_min = -0.1234 ± 3e-9`-style value with its residual bound.
pub(crate) fn value_with_bound(name: &str, value: f64, bound: f64) -> String {
    format!(
        "{name} = {} ± {}",
        format_number(value, 4),
        format_number(bound, 1)
    )
}

/// The analysis's data set, split and checkpoint, for a subtitle.
pub(crate) fn context(report: &AnalysisReport) -> String {
    format!(
        "{} · {} split · {}",
        report.dataset, report.split, report.checkpoint.path
    )
}

/// `LABEL: dataset · split · checkpoint`.
pub(crate) fn labeled_context(run: Labeled<'_, AnalysisReport>) -> String {
    format!("{}: {}", run.label, context(run.value))
}

/// An [`Error::InvalidOption`].
pub(crate) fn invalid_option(
    path: &Path,
    option: &'static str,
    value: f64,
    expected: &'static str,
) -> Error {
    Error::InvalidOption {
        path: path.to_path_buf(),
        option,
        value,
        expected,
    }
}

/// A figure side of at least 200 pixels.
pub(crate) fn check_size(path: &Path, option: &'static str, value: u32) -> Result<(), Error> {
    if value < 200 {
        return Err(invalid_option(
            path,
            option,
            value as f64,
            "at least 200 pixels",
        ));
    }
    Ok(())
}

/// Checks that a class's extremes and their bounds are finite.
pub(crate) fn check_extremes(c: &ClassSpectrum, path: &Path) -> Result<(), Error> {
    let e = &c.estimate;
    let values = [
        ("lambda_min", e.lambda_min),
        ("lambda_max", e.lambda_max),
        ("lambda_min_bound", e.lambda_min_bound),
        ("lambda_max_bound", e.lambda_max_bound),
    ];
    match values.into_iter().find(|(_, v)| !v.is_finite()) {
        Some((name, v)) => Err(invalid_data(
            path,
            format!("{name} of {} is {v}", class_label(c)),
        )),
        None => Ok(()),
    }
}

/// [`check_extremes`], and that the density is finite, on a grid of at least 2 points, with
/// a positive value (a log axis needs one).
pub(crate) fn check_class(c: &ClassSpectrum, path: &Path) -> Result<(), Error> {
    check_extremes(c, path)?;
    let label = class_label(c);
    let d = &c.estimate.density;
    if d.grid.len() != d.values.len() || d.grid.len() < 2 {
        return Err(invalid_data(
            path,
            format!(
                "density of {label} has {} grid points and {} values (expected equal, at least 2)",
                d.grid.len(),
                d.values.len()
            ),
        ));
    }
    if let Some(v) = d.grid.iter().chain(&d.values).find(|v| !v.is_finite()) {
        return Err(invalid_data(path, format!("density of {label} holds {v}")));
    }
    if !d.values.iter().any(|&v| v > 0.0) {
        return Err(invalid_data(
            path,
            format!("density of {label} has no positive value"),
        ));
    }
    Ok(())
}

/// An [`Error::InvalidData`] naming `path`.
pub(crate) fn invalid_data(path: &Path, detail: String) -> Error {
    Error::InvalidData {
        path: path.to_path_buf(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_ends_and_spacing() {
        let items: Vec<usize> = (0..100).collect();
        let picked = spread(&items, 5);
        assert_eq!(picked, vec![0, 25, 50, 74, 99]);
        assert_eq!(spread(&items[..3], 5), vec![0, 1, 2]);
        assert_eq!(spread(&items, 2), vec![0, 99]);
    }
}
