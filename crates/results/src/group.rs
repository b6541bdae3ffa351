//! Head / medium / tail: the groups a long-tailed analysis compares. Which classes fall in
//! which group is a rule of the data (`saddlescope_data::GroupRule`); the group itself is part
//! of every result (a class's spectrum, the accuracies of a training log), so it lives here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A class's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// The most frequent classes ("many-shot").
    Head,
    /// The middle classes.
    Medium,
    /// The rarest classes ("few-shot").
    Tail,
}

impl Group {
    /// All groups, head first.
    pub const ALL: [Group; 3] = [Group::Head, Group::Medium, Group::Tail];
}

impl fmt::Display for Group {
    /// `head`, `medium` or `tail` (also the JSON form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Group::Head => "head",
            Group::Medium => "medium",
            Group::Tail => "tail",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_display_use_the_lowercase_name() {
        for (group, name) in Group::ALL.into_iter().zip(["head", "medium", "tail"]) {
            assert_eq!(group.to_string(), name);
            let json = serde_json::to_string(&group).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Group>(&json).unwrap(), group);
        }
        assert!(serde_json::from_str::<Group>("\"Head\"").is_err());
    }
}
