//! Long-tailed profiles and the seeded subset that realizes them, with the semantics of the
//! reference code the paper builds on (LDAM-DRW `imbalance_cifar.py`, `get_img_num_per_cls`
//! and `gen_imbalanced_data`), so the published CIFAR-10/100-LT sizes come out exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{self, Purpose};

/// The shape of the per-class train counts; class 0 is the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Imbalance {
    /// `n_i = floor(n_max · (1/ratio)^(i/(C−1)))`: counts decay exponentially from n_max to n_max/ratio.
    Exp,
    /// The first `floor(C/2)` classes keep n_max, the others `floor(n_max · (1/ratio))`.
    Step,
    /// Every class keeps n_max (a balanced subset; the whole split when n_max is the class size).
    None,
}

impl FromStr for Imbalance {
    type Err = Error;

    /// `exp`, `step` or `none`; anything else is [`Error::UnknownImbalance`].
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exp" => Ok(Imbalance::Exp),
            "step" => Ok(Imbalance::Step),
            "none" => Ok(Imbalance::None),
            _ => Err(Error::UnknownImbalance {
                name: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Imbalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Imbalance::Exp => "exp",
            Imbalance::Step => "step",
            Imbalance::None => "none",
        })
    }
}

/// Fails with [`Error::BadRatio`] unless `ratio` is a number `>= 1` (NaN included).
pub fn check_ratio(ratio: f64) -> Result<()> {
    if ratio >= 1.0 && ratio.is_finite() {
        Ok(())
    } else {
        Err(Error::BadRatio { ratio })
    }
}

/// Per-class train counts of a profile.
///
/// Computed in f64 exactly as the reference code does (`int(img_max * imb_factor**(i /
/// (C - 1.0)))` with `imb_factor = 1/ratio`), so the counts match it bit for bit, e.g.
/// CIFAR-10 (n_max 5000) at ratio 100: `[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]`.
/// With one class the exponent is taken as 0 (n_0 = n_max).
///
/// # Errors
/// [`Error::BadRatio`] for a ratio below 1, [`Error::NoClasses`] for `classes == 0`,
/// [`Error::EmptyClass`] when some class would get 0 samples (including `n_max == 0`).
///
/// # Example
/// ```
/// use saddlescope_data::{class_counts, Imbalance};
/// let counts = class_counts(Imbalance::Exp, 10, 5000, 10.0)?;
/// assert_eq!(counts, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]);
/// assert_eq!(class_counts(Imbalance::Step, 4, 100, 10.0)?, [100, 100, 10, 10]);
/// # Ok::<(), saddlescope_data::Error>(())
/// ```
pub fn class_counts(
    imbalance: Imbalance,
    classes: usize,
    n_max: usize,
    ratio: f64,
) -> Result<Vec<usize>> {
    check_ratio(ratio)?;
    if classes == 0 {
        return Err(Error::NoClasses);
    }
    let factor = 1.0 / ratio;
    let img_max = n_max as f64;
    // `as usize` truncates toward zero like Python's int() on these non-negative values.
    let counts: Vec<usize> = (0..classes)
        .map(|i| match imbalance {
            Imbalance::Exp if classes > 1 => {
                (img_max * factor.powf(i as f64 / (classes as f64 - 1.0))) as usize
            }
            Imbalance::Step if i >= classes / 2 => (img_max * factor) as usize,
            _ => n_max,
        })
        .collect();
    match counts.iter().position(|&n| n == 0) {
        Some(class) => Err(Error::EmptyClass {
            class,
            n_max,
            ratio,
            n_max_derived: false,
        }),
        None => Ok(counts),
    }
}

/// Indices of the long-tailed subset of a split with `labels`: for each class `c`, a seeded
/// shuffle of that class's indices (taken in data-set order; stream `(seed, c)`) of which
/// the first `counts[c]` are kept. The result is sorted by original index, so the subset
/// keeps the data set's order and is identical for equal `(labels, counts, seed)`; the
/// subset of class `c` does not depend on the other classes' counts.
///
/// # Errors
/// [`Error::TooFewSamples`] when a class has fewer than `counts[c]` samples (`n_max` is
/// `counts[0]`, the head count, for the message), [`Error::ClassOutOfRange`] for a label
/// `>= counts.len()`.
pub fn select(labels: &[u32], counts: &[usize], seed: u64) -> Result<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
    for (i, &label) in labels.iter().enumerate() {
        by_class
            .get_mut(label as usize)
            .ok_or(Error::ClassOutOfRange {
                class: label as usize,
                classes: counts.len(),
            })?
            .push(i);
    }
    let mut selected = Vec::with_capacity(counts.iter().sum());
    for (class, (mut indices, &wanted)) in by_class.into_iter().zip(counts).enumerate() {
        if indices.len() < wanted {
            return Err(Error::TooFewSamples {
                n_max: counts.first().copied().unwrap_or(0),
                class,
                wanted,
                available: indices.len(),
            });
        }
        let mut rng = rng::stream(seed, Purpose::Select, class as u64);
        rng::shuffle(&mut rng, &mut indices);
        selected.extend_from_slice(&indices[..wanted]);
    }
    selected.sort_unstable();
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_published_cifar_lt_sizes() {
        // The lists of the issue (and of LDAM-DRW's CIFAR-10-LT / CIFAR-100-LT).
        let c10_100 = class_counts(Imbalance::Exp, 10, 5000, 100.0).unwrap();
        assert_eq!(
            c10_100,
            [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        );
        assert_eq!(c10_100.iter().sum::<usize>(), 12_406);
        let c10_10 = class_counts(Imbalance::Exp, 10, 5000, 10.0).unwrap();
        assert_eq!(
            c10_10,
            [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
        );
        assert_eq!(c10_10.iter().sum::<usize>(), 20_431);
        let c100 = class_counts(Imbalance::Exp, 100, 500, 100.0).unwrap();
        assert_eq!((c100[0], c100[99]), (500, 5));
        assert_eq!(c100.iter().sum::<usize>(), 10_847);
        assert!(c100.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn step_none_and_single_class() {
        assert_eq!(
            class_counts(Imbalance::Step, 10, 5000, 100.0).unwrap(),
            [5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50]
        );
        // Odd C: floor(5/2) = 2 head classes.
        assert_eq!(
            class_counts(Imbalance::Step, 5, 30, 3.0).unwrap(),
            [30, 30, 10, 10, 10]
        );
        assert_eq!(
            class_counts(Imbalance::None, 3, 7, 100.0).unwrap(),
            [7, 7, 7]
        );
        assert_eq!(class_counts(Imbalance::Exp, 1, 9, 100.0).unwrap(), [9]);
        assert_eq!(
            class_counts(Imbalance::Exp, 4, 9, 1.0).unwrap(),
            [9, 9, 9, 9]
        );
    }

    #[test]
    fn bad_profiles_name_the_parameter() {
        for ratio in [0.5, f64::NAN, f64::INFINITY, -3.0] {
            let err = class_counts(Imbalance::Exp, 10, 5000, ratio).unwrap_err();
            assert!(
                matches!(err, Error::BadRatio { .. }) && err.is_usage(),
                "{ratio}"
            );
        }
        assert_eq!(
            class_counts(Imbalance::Exp, 10, 5000, 0.5)
                .unwrap_err()
                .to_string(),
            "ratio 0.5 must be a number of at least 1 (n_max / n_min)"
        );
        // 50 · 0.001^(6/9) = 0.5: class 6 is the first left empty.
        let err = class_counts(Imbalance::Exp, 10, 50, 1000.0).unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "ratio 1000 with n_max 50 leaves class 6 with 0 train samples"
        );
        let err = class_counts(Imbalance::None, 3, 0, 1.0).unwrap_err();
        assert!(matches!(err, Error::EmptyClass { class: 0, .. }));
        assert_eq!(
            class_counts(Imbalance::Exp, 0, 5, 2.0)
                .unwrap_err()
                .to_string(),
            "classes 0: need at least one class"
        );
    }

    #[test]
    fn imbalance_names_round_trip() {
        for imbalance in [Imbalance::Exp, Imbalance::Step, Imbalance::None] {
            assert_eq!(
                imbalance.to_string().parse::<Imbalance>().unwrap(),
                imbalance
            );
            let json = serde_json::to_string(&imbalance).unwrap();
            assert_eq!(json, format!("\"{imbalance}\""));
        }
        let err = "linear".parse::<Imbalance>().unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "unknown imbalance `linear` for imbalance: expected exp, step or none"
        );
    }

    /// 3 classes, interleaved: labels 0, 1, 2, 0, 1, 2, ... (20 samples each).
    fn labels() -> Vec<u32> {
        (0..60).map(|i| i % 3).collect()
    }

    #[test]
    fn selection_is_seeded_sorted_and_per_class() {
        let labels = labels();
        let counts = [20, 7, 2];
        let a = select(&labels, &counts, 0).unwrap();
        assert_eq!(a.len(), 29);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        for (class, &n) in counts.iter().enumerate() {
            let got = a.iter().filter(|&&i| labels[i] as usize == class).count();
            assert_eq!(got, n);
        }
        assert_eq!(
            a,
            select(&labels, &counts, 0).unwrap(),
            "same seed, same subset"
        );
        assert_ne!(
            a,
            select(&labels, &counts, 1).unwrap(),
            "other seed, other subset"
        );
        // Class 2's subset does not depend on class 1's count.
        let b = select(&labels, &[20, 3, 2], 0).unwrap();
        let of_class = |s: &[usize], c: u32| -> Vec<usize> {
            s.iter().copied().filter(|&i| labels[i] == c).collect()
        };
        assert_eq!(of_class(&a, 2), of_class(&b, 2));
    }

    #[test]
    fn selection_reports_classes_that_cannot_supply() {
        let err = select(&labels(), &[21, 1, 1], 0).unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "n_max 21 asks class 0 for 21 train samples, but it has only 20"
        );
        let err = select(&[0, 3], &[1, 1], 0).unwrap_err();
        assert!(matches!(
            err,
            Error::ClassOutOfRange {
                class: 3,
                classes: 2
            }
        ));
    }
}
