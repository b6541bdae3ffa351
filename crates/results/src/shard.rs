//! Shards of a job array: which of N runs this is ([`Shard`], spelled `I/N`, 1-based as
//! Slurm's `$SLURM_ARRAY_TASK_ID`), which work items each run owns ([`partition`]), and
//! whether a set of finished runs covers every shard exactly once ([`check_coverage`]).
//!
//! Nothing here knows what the items are: `analyze --shard` partitions Hessians by sample
//! count, and any other embarrassingly parallel command (a study's cells) can partition its
//! own items with the same functions and check its shards with the same rules.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Run `index` of `count` (1 ≤ index ≤ count), spelled `I/N`.
///
/// ```
/// use saddlescope_results::Shard;
/// let shard: Shard = "2/8".parse()?;
/// assert_eq!((shard.index(), shard.count()), (2, 8));
/// assert_eq!(shard.to_string(), "2/8");
/// assert_eq!(shard.dir_name(), "shard-2-of-8");
/// assert!("0/8".parse::<Shard>().is_err());
/// # Ok::<(), saddlescope_results::ShardSpecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    index: usize,
    count: usize,
}

/// Why a shard spelling is not `I/N` with 1 ≤ I ≤ N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    /// Not two numbers separated by `/`.
    #[error("expected I/N (run I of N, 1 <= I <= N), e.g. 1/4")]
    Syntax,
    /// N = 0.
    #[error("the shard count must be at least 1")]
    NoShards,
    /// I = 0 or I > N.
    #[error("shard {index} is outside 1..={count}")]
    OutOfRange {
        /// The index given.
        index: usize,
        /// The shard count given.
        count: usize,
    },
}

impl Shard {
    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`ShardSpecError::NoShards`] for `count = 0`, [`ShardSpecError::OutOfRange`] unless
    /// `1 ≤ index ≤ count`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardSpecError> {
        if count == 0 {
            return Err(ShardSpecError::NoShards);
        }
        if !(1..=count).contains(&index) {
            return Err(ShardSpecError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// Every shard of a `count`-way split, in order.
    pub fn all(count: usize) -> impl Iterator<Item = Shard> {
        (1..=count).map(move |index| Shard { index, count })
    }

    /// The 1-based index I.
    pub fn index(self) -> usize {
        self.index
    }

    /// The shard count N.
    pub fn count(self) -> usize {
        self.count
    }

    /// `shard-I-of-N`: the conventional directory name of this shard's output, so that the
    /// shards of one job never share a directory.
    pub fn dir_name(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// The items of `costs` this shard owns under [`partition`], ascending.
    pub fn items(self, costs: &[u64]) -> Vec<usize> {
        partition(costs, self.count).swap_remove(self.index - 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (index, count) = text.split_once('/').ok_or(ShardSpecError::Syntax)?;
        let number = |s: &str| s.parse::<usize>().map_err(|_| ShardSpecError::Syntax);
        Shard::new(number(index)?, number(count)?)
    }
}

impl TryFrom<String> for Shard {
    type Error = ShardSpecError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> Self {
        shard.to_string()
    }
}

/// Splits items with the given costs into `count` shards (`count ≥ 1`) with loads as even
/// as the greedy longest-processing-time rule makes them: items in order of decreasing cost
/// (ties: lower position first), each to the shard with the least load so far (ties: the
/// one with fewer items, then the lower shard). Returns each shard's item positions, ascending; with more shards than
/// items the last shards are empty.
///
/// Deterministic: a pure function of `costs` and `count`. Every item lands in exactly one
/// shard, and the largest load is at most 4/3 − 1/(3·count) of the best possible (Graham
/// 1969, "Bounds on multiprocessing timing anomalies"); it can never be below the largest
/// single cost.
///
/// ```
/// use saddlescope_results::partition;
/// // A long-tailed profile and the all-classes Hessian (the sum): `all` runs alone.
/// let costs = [500, 200, 80, 30, 810];
/// assert_eq!(partition(&costs, 2), [vec![4], vec![0, 1, 2, 3]]);
/// assert_eq!(partition(&costs, 3), [vec![4], vec![0], vec![1, 2, 3]]);
/// ```
pub fn partition(costs: &[u64], count: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].cmp(&costs[a]).then(a.cmp(&b)));
    let mut loads = vec![0u64; count];
    let mut shards = vec![Vec::new(); count];
    for item in order {
        let Some(lightest) = (0..count).min_by_key(|&s| (loads[s], shards[s].len(), s)) else {
            break;
        };
        loads[lightest] += costs[item];
        shards[lightest].push(item);
    }
    for shard in &mut shards {
        shard.sort_unstable();
    }
    shards
}

/// Why a set of shard outputs is not one complete `N`-way split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    /// The outputs come from splits into different numbers of shards.
    #[error("{} is shard {first} but {} is shard {other}: they come from different splits", first_dir.display(), other_dir.display())]
    MixedCounts {
        /// The first output.
        first_dir: PathBuf,
        /// Its shard.
        first: Shard,
        /// An output of another split.
        other_dir: PathBuf,
        /// Its shard.
        other: Shard,
    },
    /// Two outputs are the same shard.
    #[error("shard {shard} is given twice: {} and {}", first.display(), second.display())]
    Doubled {
        /// The shard.
        shard: Shard,
        /// Its first output.
        first: PathBuf,
        /// Its second output.
        second: PathBuf,
    },
    /// Some shards have no output.
    #[error("{}", missing_text(.missing))]
    Missing {
        /// The shards without output, in order.
        missing: Vec<Shard>,
    },
    /// No outputs at all.
    #[error("no shard outputs given")]
    Empty,
}

fn missing_text(missing: &[Shard]) -> String {
    let names: Vec<String> = missing.iter().map(|s| format!("shard {s}")).collect();
    format!("missing {}", names.join(", "))
}

/// Checks that `outputs` (each a shard and the directory holding its output) are every shard
/// of one split exactly once, and returns them in shard order.
///
/// # Errors
/// [`CoverageError`]: mixed splits and doubles name both directories, missing shards are
/// listed in order.
pub fn check_coverage(
    mut outputs: Vec<(Shard, PathBuf)>,
) -> Result<Vec<(Shard, PathBuf)>, CoverageError> {
    let Some((first, first_dir)) = outputs.first().cloned() else {
        return Err(CoverageError::Empty);
    };
    if let Some((other, other_dir)) = outputs.iter().find(|(s, _)| s.count != first.count) {
        return Err(CoverageError::MixedCounts {
            first_dir,
            first,
            other_dir: other_dir.clone(),
            other: *other,
        });
    }
    outputs.sort_by_key(|(shard, _)| *shard);
    if let Some(pair) = outputs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(CoverageError::Doubled {
            shard: pair[0].0,
            first: pair[0].1.clone(),
            second: pair[1].1.clone(),
        });
    }
    let missing: Vec<Shard> = Shard::all(first.count)
        .filter(|s| {
            outputs
                .binary_search_by_key(s, |(shard, _)| *shard)
                .is_err()
        })
        .collect();
    if !missing.is_empty() {
        return Err(CoverageError::Missing { missing });
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_i_of_n_and_name_what_is_wrong() {
        assert_eq!("3/4".parse::<Shard>(), Shard::new(3, 4));
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for (text, err) in [
            ("x", ShardSpecError::Syntax),
            ("1", ShardSpecError::Syntax),
            ("1/x", ShardSpecError::Syntax),
            ("-1/4", ShardSpecError::Syntax),
            ("1/4/2", ShardSpecError::Syntax),
            ("", ShardSpecError::Syntax),
            ("1/0", ShardSpecError::NoShards),
            ("0/0", ShardSpecError::NoShards),
            ("0/4", ShardSpecError::OutOfRange { index: 0, count: 4 }),
            ("5/4", ShardSpecError::OutOfRange { index: 5, count: 4 }),
        ] {
            assert_eq!(text.parse::<Shard>(), Err(err), "{text:?}");
        }
        assert_eq!(
            "5/4".parse::<Shard>().unwrap_err().to_string(),
            "shard 5 is outside 1..=4"
        );
    }

    #[test]
    fn shards_serialize_as_their_spelling() {
        let shard = Shard::new(2, 3).unwrap();
        assert_eq!(serde_json::to_string(&shard).unwrap(), "\"2/3\"");
        assert_eq!(serde_json::from_str::<Shard>("\"2/3\"").unwrap(), shard);
        assert!(serde_json::from_str::<Shard>("\"4/3\"").is_err());
    }

    /// Every item in exactly one shard, for every shard count from 1 to beyond the item count.
    #[test]
    fn every_item_lands_in_exactly_one_shard() {
        let costs: Vec<u64> = vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50, 12406];
        for count in 1..=costs.len() + 3 {
            let shards = partition(&costs, count);
            assert_eq!(shards.len(), count);
            let mut seen: Vec<usize> = shards.concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..costs.len()).collect::<Vec<_>>(), "N = {count}");
            let empty = shards.iter().filter(|s| s.is_empty()).count();
            assert_eq!(empty, count.saturating_sub(costs.len()), "N = {count}");
            for (s, shard) in Shard::all(count).zip(&shards) {
                assert_eq!(&s.items(&costs), shard);
            }
        }
    }

    /// CIFAR-10-LT (ratio 100): the all-classes Hessian costs as much as all classes
    /// together, so two shards split the work exactly and more only split the classes.
    #[test]
    fn the_all_classes_hessian_gets_a_shard_of_its_own() {
        let costs: Vec<u64> = vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50, 12406];
        assert_eq!(
            partition(&costs, 2),
            [vec![10], (0..10).collect::<Vec<_>>()]
        );
        let four = partition(&costs, 4);
        assert_eq!(four[0], [10]);
        assert!(four[1..].iter().all(|s| !s.contains(&10)));
    }

    #[test]
    fn ties_break_by_position_then_shard() {
        assert_eq!(partition(&[1, 1, 1, 1], 2), [vec![0, 2], vec![1, 3]]);
        assert_eq!(partition(&[0, 0], 3), [vec![0], vec![1], vec![]]);
        assert_eq!(partition(&[], 2), [Vec::<usize>::new(), vec![]]);
    }

    /// The best largest load, by trying every assignment.
    fn optimum(costs: &[u64], count: usize) -> u64 {
        let mut best = u64::MAX;
        let mut assignment = vec![0usize; costs.len()];
        loop {
            let mut loads = vec![0u64; count];
            for (item, &s) in assignment.iter().enumerate() {
                loads[s] += costs[item];
            }
            best = best.min(loads.into_iter().max().unwrap_or(0));
            // Next assignment, as a base-`count` counter.
            let Some(position) = assignment.iter().position(|&s| s + 1 < count) else {
                return best;
            };
            assignment[position] += 1;
            assignment[..position].fill(0);
        }
    }

    proptest::proptest! {
        /// Graham's bound against the brute-force optimum, and determinism.
        #[test]
        fn loads_stay_within_grahams_bound(
            costs in proptest::collection::vec(0u64..1000, 0..8),
            count in 1usize..4,
        ) {
            let shards = partition(&costs, count);
            proptest::prop_assert_eq!(&shards, &partition(&costs, count));
            let largest = shards
                .iter()
                .map(|s| s.iter().map(|&i| costs[i]).sum::<u64>())
                .max()
                .unwrap();
            let best = optimum(&costs, count);
            // largest <= (4/3 - 1/(3 count)) best, in integers.
            proptest::prop_assert!(
                3 * count as u64 * largest <= (4 * count as u64 - 1) * best,
                "largest load {} against the optimum {}", largest, best
            );
        }
    }

    fn dir(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    #[test]
    fn coverage_names_missing_doubled_and_mixed_shards() {
        let s = |i, n| Shard::new(i, n).unwrap();
        let ok = check_coverage(vec![(s(2, 2), dir("b")), (s(1, 2), dir("a"))]).unwrap();
        assert_eq!(ok, [(s(1, 2), dir("a")), (s(2, 2), dir("b"))]);
        let missing = check_coverage(vec![(s(2, 4), dir("b"))]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "missing shard 1/4, shard 3/4, shard 4/4"
        );
        let doubled = check_coverage(vec![(s(1, 2), dir("a")), (s(1, 2), dir("c"))]);
        assert_eq!(
            doubled.unwrap_err().to_string(),
            "shard 1/2 is given twice: a and c"
        );
        let mixed = check_coverage(vec![(s(1, 2), dir("a")), (s(1, 3), dir("x"))]);
        assert_eq!(
            mixed.unwrap_err().to_string(),
            "a is shard 1/2 but x is shard 1/3: they come from different splits"
        );
        assert_eq!(check_coverage(vec![]), Err(CoverageError::Empty));
    }
}
