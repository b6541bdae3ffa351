//! Head / medium / tail groups for comparing classes of different sizes: which class falls
//! in which [`Group`] (the group itself is part of every result, in `saddlescope-results`).
//!
//! Two rules: `thirds` (default) sorts classes by train count, descending with ties broken
//! by class id, and cuts the order into three runs of sizes `ceil`-first like
//! `numpy.array_split`: C = 10 → 4 / 3 / 3, C = 11 → 4 / 4 / 3, C = 100 → 34 / 33 / 33 (head
//! gets the extra class, then medium). `counts:MANY,FEW` is the many/medium/few-shot
//! convention of the long-tail literature (Liu et al., OLTR, CVPR 2019): head if
//! count > MANY, tail if count < FEW, medium otherwise (`counts:100,20`).

use std::fmt;
use std::str::FromStr;

use saddlescope_results::Group;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How classes are assigned to groups (the `--groups` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum GroupRule {
    /// `thirds`: thirds of the classes sorted by train count (see the module docs).
    #[default]
    Thirds,
    /// `counts:MANY,FEW`: head if count > many, tail if count < few, medium otherwise.
    Counts {
        /// Head threshold (exclusive).
        many: usize,
        /// Tail threshold (exclusive); at most `many + 1`, so the rule is consistent.
        few: usize,
    },
}

impl GroupRule {
    /// The group of every class given its train count.
    ///
    /// # Example
    /// ```
    /// use saddlescope_data::{Group, GroupRule};
    /// let groups = GroupRule::Thirds.assign(&[5, 9, 1, 7]);
    /// assert_eq!(groups, [Group::Medium, Group::Head, Group::Tail, Group::Head]);
    /// ```
    pub fn assign(&self, counts: &[usize]) -> Vec<Group> {
        match *self {
            GroupRule::Thirds => {
                let mut order: Vec<usize> = (0..counts.len()).collect();
                order.sort_by_key(|&c| (std::cmp::Reverse(counts[c]), c));
                let (base, extra) = (counts.len() / 3, counts.len() % 3);
                let head = base + usize::from(extra > 0);
                let medium = base + usize::from(extra > 1);
                let mut groups = vec![Group::Tail; counts.len()];
                for (rank, &class) in order.iter().enumerate() {
                    if rank < head {
                        groups[class] = Group::Head;
                    } else if rank < head + medium {
                        groups[class] = Group::Medium;
                    }
                }
                groups
            }
            GroupRule::Counts { many, few } => counts
                .iter()
                .map(|&n| {
                    if n > many {
                        Group::Head
                    } else if n < few {
                        Group::Tail
                    } else {
                        Group::Medium
                    }
                })
                .collect(),
        }
    }
}

impl FromStr for GroupRule {
    type Err = Error;

    /// `thirds` or `counts:MANY,FEW` with `FEW <= MANY + 1`.
    ///
    /// # Errors
    /// [`Error::BadGroups`] naming the value and the accepted forms.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadGroups {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        if s == "thirds" {
            return Ok(GroupRule::Thirds);
        }
        let Some(thresholds) = s.strip_prefix("counts:") else {
            return Err(bad(
                "expected thirds or counts:MANY,FEW (e.g. counts:100,20)",
            ));
        };
        let parse = |t: Option<&str>| t.and_then(|t| t.trim().parse::<usize>().ok());
        let mut parts = thresholds.split(',');
        match (parse(parts.next()), parse(parts.next()), parts.next()) {
            (Some(many), Some(few), None) if few <= many + 1 => Ok(GroupRule::Counts { many, few }),
            (Some(_), Some(_), None) => Err(bad("FEW must not exceed MANY + 1")),
            _ => Err(bad(
                "expected counts:MANY,FEW with two counts (e.g. counts:100,20)",
            )),
        }
    }
}

impl fmt::Display for GroupRule {
    /// `thirds` or `counts:MANY,FEW`; parses back to the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRule::Thirds => f.write_str("thirds"),
            GroupRule::Counts { many, few } => write!(f, "counts:{many},{few}"),
        }
    }
}

impl From<GroupRule> for String {
    fn from(rule: GroupRule) -> String {
        rule.to_string()
    }
}

impl TryFrom<String> for GroupRule {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imbalance::{class_counts, Imbalance};

    fn sizes(groups: &[Group]) -> [usize; 3] {
        Group::ALL.map(|g| groups.iter().filter(|&&x| x == g).count())
    }

    #[test]
    fn thirds_for_cifar10_lt() {
        let counts = class_counts(Imbalance::Exp, 10, 5000, 100.0).unwrap();
        let groups = GroupRule::Thirds.assign(&counts);
        use Group::*;
        assert_eq!(
            groups,
            [Head, Head, Head, Head, Medium, Medium, Medium, Tail, Tail, Tail]
        );
    }

    #[test]
    fn thirds_for_cifar100_lt_and_other_sizes() {
        let counts = class_counts(Imbalance::Exp, 100, 500, 100.0).unwrap();
        let groups = GroupRule::Thirds.assign(&counts);
        assert_eq!(sizes(&groups), [34, 33, 33]);
        assert!(groups[..34].iter().all(|&g| g == Group::Head));
        assert!(groups[34..67].iter().all(|&g| g == Group::Medium));
        assert!(groups[67..].iter().all(|&g| g == Group::Tail));
        let sized = |c: usize| sizes(&GroupRule::Thirds.assign(&vec![1; c]));
        assert_eq!(sized(11), [4, 4, 3]);
        assert_eq!(sized(9), [3, 3, 3]);
        assert_eq!(sized(2), [1, 1, 0]);
        assert_eq!(sized(1), [1, 0, 0]);
        assert_eq!(sized(0), [0, 0, 0]);
    }

    #[test]
    fn thirds_sort_by_count_then_class_id() {
        use Group::*;
        // Equal counts: ties broken by class id (lower id = earlier = head side).
        assert_eq!(GroupRule::Thirds.assign(&[3, 3, 3]), [Head, Medium, Tail]);
        assert_eq!(
            GroupRule::Thirds.assign(&[1, 50, 2, 50, 9, 9]),
            [Tail, Head, Tail, Head, Medium, Medium]
        );
    }

    #[test]
    fn counts_rule_for_cifar100_lt() {
        // CIFAR-100-LT at ratio 100 with counts:100,20 has the usual 35 many / 35 medium /
        // 30 few classes (n_i > 100 for i <= 34, n_i < 20 for i >= 70).
        let counts = class_counts(Imbalance::Exp, 100, 500, 100.0).unwrap();
        let groups = "counts:100,20"
            .parse::<GroupRule>()
            .unwrap()
            .assign(&counts);
        assert_eq!(sizes(&groups), [35, 35, 30]);
        use Group::*;
        let rule = GroupRule::Counts { many: 100, few: 20 };
        assert_eq!(
            rule.assign(&[101, 100, 20, 19]),
            [Head, Medium, Medium, Tail]
        );
    }

    #[test]
    fn rule_strings_round_trip_and_reject() {
        for s in ["thirds", "counts:100,20", "counts:5,6"] {
            let rule: GroupRule = s.parse().unwrap();
            assert_eq!(rule.to_string(), s);
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(serde_json::from_str::<GroupRule>(&json).unwrap(), rule);
        }
        let err = "halves".parse::<GroupRule>().unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "bad groups `halves`: expected thirds or counts:MANY,FEW (e.g. counts:100,20)"
        );
        for bad in [
            "counts:",
            "counts:1",
            "counts:1,2,3",
            "counts:a,b",
            "counts:-1,0",
        ] {
            assert!(
                matches!(bad.parse::<GroupRule>(), Err(Error::BadGroups { .. })),
                "{bad}"
            );
        }
        let err = "counts:20,100".parse::<GroupRule>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad groups `counts:20,100`: FEW must not exceed MANY + 1"
        );
        assert_eq!(serde_json::to_string(&Group::Medium).unwrap(), "\"medium\"");
        assert_eq!(Group::Tail.to_string(), "tail");
    }
}
