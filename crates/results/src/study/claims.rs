//! The paper's two claims, judged from a study's cells: each a statistic per seed, its mean
//! and bootstrap interval over seeds, and a conclusion by a rule stated in words.
//!
//! Both read the curvature as λ_min/λ_max (the paper's Fig. 1 and Table 2 measure
//! |λ_min|/λ_max): scale-free, so a recipe that scales the whole spectrum (SAM flattens
//! λ_max too) does not pass for one that removes the negative direction.

use serde::{Deserialize, Serialize};

use super::bootstrap::MIN_VALUES_TO_CONCLUDE;
use super::{bootstrap_mean, BootstrapParams, CellSummary, GroupMetric, Interval, StudyDesign};
use crate::Group;

/// A claim's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Every interval lies on the claim's side of zero.
    Supported,
    /// An interval lies on the other side of zero.
    Contradicted,
    /// Neither: an interval contains zero, or it rests on fewer than
    /// [`MIN_VALUES_TO_CONCLUDE`](crate::MIN_VALUES_TO_CONCLUDE) seeds.
    Inconclusive,
}

impl Conclusion {
    /// `supported`, `contradicted`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Supported => "supported",
            Conclusion::Contradicted => "contradicted",
            Conclusion::Inconclusive => "inconclusive",
        }
    }
}

/// One quantity a claim rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is, in words.
    pub quantity: String,
    /// The sign the claim predicts: `negative` or `positive`.
    pub predicted: String,
    /// Mean and interval over seeds (`null` when no seed has it, e.g. no tail class).
    pub interval: Option<Interval>,
}

/// One claim, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// `a` or `b`.
    pub id: String,
    /// The claim, in the paper's words.
    pub statement: String,
    /// The arms it is judged on.
    pub arms: Vec<String>,
    /// The rule, in words.
    pub criterion: String,
    /// The quantities, with their intervals.
    pub evidence: Vec<Evidence>,
    /// The verdict.
    pub conclusion: Conclusion,
    /// The verdict in a sentence, with the numbers.
    pub summary: String,
}

/// Claim (a) from the per-seed difference "tail minus head" of the mean λ_min/λ_max:
/// supported when its interval lies below zero, contradicted when above, else
/// inconclusive (an interval with zero inside, fewer than [`MIN_VALUES_TO_CONCLUDE`] seeds, or
/// no value).
pub fn claim_a(difference: Option<Interval>) -> Conclusion {
    match difference {
        Some(i) if i.below_zero() => Conclusion::Supported,
        Some(i) if i.above_zero() => Conclusion::Contradicted,
        _ => Conclusion::Inconclusive,
    }
}

/// Claim (b) from the paired per-seed differences (SAM arm minus reference arm) of the tail's
/// mean λ_min/λ_max and of the tail's test accuracy: supported when both intervals lie
/// above zero, contradicted when either lies below zero, else inconclusive.
pub fn claim_b(curvature: Option<Interval>, accuracy: Option<Interval>) -> Conclusion {
    let both = [curvature, accuracy];
    if both.iter().any(|i| i.is_some_and(|i| i.below_zero())) {
        Conclusion::Contradicted
    } else if both.iter().all(|i| i.is_some_and(|i| i.above_zero())) {
        Conclusion::Supported
    } else {
        Conclusion::Inconclusive
    }
}

const RATIO: GroupMetric = GroupMetric::RatioMinMax;

/// The claims a study's design can test: (a) in the reference arm; (b) for every arm with
/// SAM against a reference arm without.
pub(super) fn evaluate(
    design: &StudyDesign,
    per_arm: &[&[CellSummary]],
    params: &BootstrapParams,
) -> Vec<Claim> {
    let metric = |c: &CellSummary, g: Group, m: GroupMetric| {
        c.group_values(g)[GroupMetric::ALL
            .iter()
            .position(|&x| x == m)
            .expect("listed")]
    };
    let reference = &design.arms[0];
    let tail_minus_head: Vec<f64> = per_arm[0]
        .iter()
        .map(|c| metric(c, Group::Tail, RATIO) - metric(c, Group::Head, RATIO))
        .collect();
    let difference = bootstrap_mean(&tail_minus_head, params);
    let level = percent(params.level);
    let mut claims = vec![Claim {
        id: "a".into(),
        statement: "tail classes sit at more negative curvature (λ_min/λ_max) than head classes".into(),
        arms: vec![reference.name.clone()],
        criterion: format!(
            "in {arm}, per seed, the mean λ_min/λ_max of the tail classes minus that of the head classes; \
             supported when the {level} bootstrap interval of its mean over seeds lies below 0, \
             contradicted when it lies above 0, inconclusive when it contains 0 or rests on fewer than {min} seeds (with fewer, an interval beyond 0 is too often chance)",
            arm = reference.name,
            min = MIN_VALUES_TO_CONCLUDE
        ),
        evidence: vec![Evidence {
            quantity: format!("tail − head mean λ_min/λ_max in {}", reference.name),
            predicted: "negative".into(),
            interval: difference,
        }],
        conclusion: claim_a(difference),
        summary: String::new(),
    }];
    for (arm, cells) in design.arms.iter().zip(per_arm).skip(1) {
        if !arm.sam || reference.sam {
            continue;
        }
        let paired = |m: GroupMetric| {
            let values: Vec<f64> = cells
                .iter()
                .zip(per_arm[0].iter())
                .map(|(b, a)| metric(b, Group::Tail, m) - metric(a, Group::Tail, m))
                .collect();
            bootstrap_mean(&values, params)
        };
        let curvature = paired(RATIO);
        let accuracy = paired(GroupMetric::TestAccuracy);
        claims.push(Claim {
            id: "b".into(),
            statement: "SAM reduces the tail classes' negative curvature and raises their accuracy".into(),
            arms: vec![reference.name.clone(), arm.name.clone()],
            criterion: format!(
                "per seed, {b} minus {a} (same seed) of the tail classes' mean λ_min/λ_max and of the tail's test accuracy; \
                 supported when the {level} bootstrap intervals of both mean differences lie above 0, \
                 contradicted when either lies below 0, inconclusive otherwise (an interval containing 0, or fewer than {min} seeds)",
                a = reference.name,
                b = arm.name,
                min = MIN_VALUES_TO_CONCLUDE
            ),
            evidence: vec![
                Evidence {
                    quantity: format!("{} − {}: tail mean λ_min/λ_max", arm.name, reference.name),
                    predicted: "positive".into(),
                    interval: curvature,
                },
                Evidence {
                    quantity: format!("{} − {}: tail test accuracy", arm.name, reference.name),
                    predicted: "positive".into(),
                    interval: accuracy,
                },
            ],
            conclusion: claim_b(curvature, accuracy),
            summary: String::new(),
        });
    }
    for claim in &mut claims {
        claim.summary = summary(claim);
    }
    claims
}

/// `95%` for 0.95.
fn percent(level: f64) -> String {
    format!("{}%", (level * 1000.0).round() / 10.0)
}

/// The conclusion in a sentence: the verdict, then each quantity with its interval and
/// whether its sign is the predicted one.
fn summary(claim: &Claim) -> String {
    let parts: Vec<String> = claim
        .evidence
        .iter()
        .map(|e| match e.interval {
            None => format!("{}: no value (no such classes)", e.quantity),
            Some(i) => {
                let agrees = if e.predicted == "negative" {
                    i.mean < 0.0
                } else {
                    i.mean > 0.0
                };
                let direction = if i.mean == 0.0 {
                    "no difference"
                } else if agrees {
                    "the predicted sign"
                } else {
                    "against the predicted sign"
                };
                let few = if i.conclusive() {
                    String::new()
                } else {
                    format!("; fewer than {MIN_VALUES_TO_CONCLUDE} seeds settle no sign")
                };
                if i.has_spread() {
                    format!(
                        "{} = {:.3} (interval {:.3} to {:.3}, {} seeds; {direction}{few})",
                        e.quantity, i.mean, i.low, i.high, i.n
                    )
                } else {
                    format!(
                        "{} = {:.3} in the one seed ({direction}); one seed gives no interval",
                        e.quantity, i.mean
                    )
                }
            }
        })
        .collect();
    format!("{}: {}", claim.conclusion.as_str(), parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(low: f64, high: f64, n: usize) -> Option<Interval> {
        Some(Interval {
            mean: (low + high) / 2.0,
            low,
            high,
            n,
        })
    }

    #[test]
    fn claim_a_in_every_branch() {
        assert_eq!(claim_a(interval(-0.3, -0.1, 5)), Conclusion::Supported);
        assert_eq!(claim_a(interval(0.1, 0.3, 5)), Conclusion::Contradicted);
        assert_eq!(claim_a(interval(-0.3, 0.1, 5)), Conclusion::Inconclusive);
        // One seed: a point below zero is no interval below zero; nor do 4 seeds settle it.
        assert_eq!(claim_a(interval(-0.2, -0.2, 1)), Conclusion::Inconclusive);
        assert_eq!(claim_a(interval(-0.3, -0.1, 4)), Conclusion::Inconclusive);
        assert_eq!(claim_a(interval(0.1, 0.3, 4)), Conclusion::Inconclusive);
        assert_eq!(claim_a(None), Conclusion::Inconclusive);
        // An interval touching zero does not lie below it.
        assert_eq!(claim_a(interval(-0.3, 0.0, 5)), Conclusion::Inconclusive);
    }

    #[test]
    fn claim_b_in_every_branch() {
        let up = interval(0.1, 0.3, 5);
        let down = interval(-0.3, -0.1, 5);
        let either = interval(-0.1, 0.1, 5);
        assert_eq!(claim_b(up, up), Conclusion::Supported);
        assert_eq!(claim_b(down, up), Conclusion::Contradicted);
        assert_eq!(claim_b(up, down), Conclusion::Contradicted);
        assert_eq!(claim_b(down, either), Conclusion::Contradicted);
        assert_eq!(claim_b(up, either), Conclusion::Inconclusive);
        assert_eq!(claim_b(either, either), Conclusion::Inconclusive);
        assert_eq!(claim_b(up, None), Conclusion::Inconclusive);
        assert_eq!(
            claim_b(interval(0.2, 0.2, 1), interval(0.1, 0.1, 1)),
            Conclusion::Inconclusive
        );
        assert_eq!(
            claim_b(interval(-0.3, -0.1, 3), interval(0.1, 0.3, 3)),
            Conclusion::Inconclusive
        );
    }
}
