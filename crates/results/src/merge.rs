//! Sharded analyses and their merge. `analyze --shard I/N` writes, besides its per-Hessian
//! files, a [`ShardManifest`] (`shard.json`): which shard it is, the whole plan and the
//! report's per-analysis fields. [`merge_shards`] checks that a set of shard directories is
//! one analysis split once and completely, and assembles the report an unsharded run
//! writes; [`write_merged`] writes it with the per-Hessian files.
//!
//! The checks, in order: every directory holds a manifest; every manifest agrees with the
//! first on the plan and on every per-analysis field (checkpoint and its SHA-256, data,
//! split, settings, seed, version, and whatever else the report records once per analysis),
//! naming the first field that differs; the shards are each of 1..=N exactly once
//! ([`check_coverage`]), a missing one named with the Hessians it should have had; each
//! shard holds a file for each of its Hessians, computed with the same settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    check_coverage, read_part, write_atomically, write_report, AnalysisDir, AnalysisPlan,
    AnalysisReport, CoverageError, Error, PartKey, Shard,
};

/// The content of `shard.json`: what `merge` needs to know about one shard of an analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Which shard.
    pub shard: Shard,
    /// The whole analysis's plan (the same in every shard).
    pub plan: AnalysisPlan,
    /// The report's per-analysis fields; its per-Hessian fields (`classes`, `all`,
    /// `trace_identity`) are empty.
    pub header: AnalysisReport,
}

impl ShardManifest {
    /// The positions in the plan of this shard's Hessians.
    pub fn hessians(&self) -> Vec<usize> {
        self.plan.shard(self.shard)
    }
}

/// Writes `manifest` to `dir`'s `shard.json`, atomically.
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn write_manifest(dir: &AnalysisDir, manifest: &ShardManifest) -> Result<(), Error> {
    let path = dir.manifest();
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| Error::encode(&path, e))?;
    write_atomically(&path, json).map_err(|e| Error::io(&path, e))
}

/// Why shard directories do not merge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A directory has no `shard.json`.
    #[error("{}: no shard.json; not the output of `analyze --shard I/N`", dir.display())]
    NotAShard {
        /// The directory.
        dir: PathBuf,
    },
    /// Two shards disagree on a per-analysis field or on the plan.
    #[error(transparent)]
    Differ(Box<ShardDifference>),
    /// The shards are not one split, or a shard is given twice.
    #[error(transparent)]
    Coverage(CoverageError),
    /// Shards are missing.
    #[error("missing {}", missing.iter().map(|(s, h)| format!("shard {s} ({h})")).collect::<Vec<_>>().join(", "))]
    Missing {
        /// Each missing shard with the Hessians it should have had (`class 2, all`).
        missing: Vec<(Shard, String)>,
    },
    /// A shard has not finished some of its Hessians.
    #[error("shard {shard} ({}) is incomplete: no result for {hessians}; rerun it with the same command plus --resume", dir.display())]
    Incomplete {
        /// The shard.
        shard: Shard,
        /// Its directory.
        dir: PathBuf,
        /// The Hessians without a file (`class 5, all`).
        hessians: String,
    },
    /// A per-Hessian file was computed with other settings than its shard's.
    #[error("{}: computed with another {field} than shard {shard}; rerun the shard with the same command plus --resume", path.display())]
    Stale {
        /// The file.
        path: PathBuf,
        /// Its shard.
        shard: Shard,
        /// The first differing setting (`params.seed`).
        field: String,
    },
    /// A file could not be read, or holds another Hessian than its name says.
    #[error(transparent)]
    Results(#[from] Error),
}

/// The first field on which two shards of one merge disagree.
#[derive(Debug, thiserror::Error)]
#[error("shards differ in {field}: shard {first} ({}) has {first_value}, shard {other} ({}) has {other_value}", first_dir.display(), other_dir.display())]
pub struct ShardDifference {
    /// The JSON path of the first differing field (`params.seed`, `checkpoint.sha256`).
    field: String,
    /// The first shard given.
    first: Shard,
    /// Its directory.
    first_dir: PathBuf,
    /// Its value, as JSON.
    first_value: String,
    /// The shard that differs.
    other: Shard,
    /// Its directory.
    other_dir: PathBuf,
    /// Its value, as JSON.
    other_value: String,
}

/// The merged analysis: the report and the per-Hessian files it was made from.
#[derive(Debug)]
pub struct MergedAnalysis {
    /// The report, as an unsharded run writes it.
    pub report: AnalysisReport,
    /// The shards, in order, with their directories.
    pub shards: Vec<(Shard, PathBuf)>,
    /// Each planned Hessian's file, in plan order.
    parts: Vec<PathBuf>,
}

/// Checks that `dirs` are the shards of one analysis, each once, all complete, and assembles
/// their report (see the module docs for the checks).
///
/// # Errors
/// [`MergeError`], naming the directory, shard, field or file.
pub fn merge_shards(dirs: &[PathBuf]) -> Result<MergedAnalysis, MergeError> {
    let mut manifests = Vec::new();
    for dir in dirs {
        let path = AnalysisDir::new(dir).manifest();
        if !path.exists() {
            return Err(MergeError::NotAShard { dir: dir.clone() });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: ShardManifest =
            serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, e))?;
        manifests.push((manifest, dir.clone()));
    }
    let Some((first, first_dir)) = manifests.first() else {
        return Err(MergeError::Coverage(CoverageError::Empty));
    };
    for (other, other_dir) in &manifests[1..] {
        let agreement = [
            ("plan", json(&first.plan), json(&other.plan)),
            ("", json(&first.header), json(&other.header)),
        ];
        for (root, a, b) in agreement {
            if let Some((field, first_value, other_value)) = first_difference(root, &a, &b) {
                return Err(MergeError::Differ(Box::new(ShardDifference {
                    field,
                    first: first.shard,
                    first_dir: first_dir.clone(),
                    first_value,
                    other: other.shard,
                    other_dir: other_dir.clone(),
                    other_value,
                })));
            }
        }
    }
    let plan = &first.plan;
    let shards = check_coverage(
        manifests
            .iter()
            .map(|(m, d)| (m.shard, d.clone()))
            .collect(),
    )
    .map_err(|err| match err {
        CoverageError::Missing { missing } => MergeError::Missing {
            missing: missing
                .into_iter()
                .map(|s| (s, plan.labels(&plan.shard(s))))
                .collect(),
        },
        other => MergeError::Coverage(other),
    })?;
    let key = json(&PartKey::of(&first.header));
    let mut parts = vec![PathBuf::new(); plan.hessians.len()];
    let mut results = vec![None; plan.hessians.len()];
    for &(shard, ref dir) in &shards {
        let positions = plan.shard(shard);
        let layout = AnalysisDir::new(dir);
        let missing: Vec<usize> = positions
            .iter()
            .copied()
            .filter(|&i| !layout.part(plan.hessians[i].class).exists())
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::Incomplete {
                shard,
                dir: dir.clone(),
                hessians: plan.labels(&missing),
            });
        }
        for i in positions {
            let class = plan.hessians[i].class;
            let path = layout.part(class);
            let part = read_part(&path)?;
            if let Some((field, _, _)) = first_difference("", &key, &json(&part.key)) {
                return Err(MergeError::Stale { path, shard, field });
            }
            if part.result.class != class {
                let detail = format!("holds the result of {:?}", part.result.name);
                return Err(Error::corrupt(&path, detail).into());
            }
            results[i] = Some(part.result);
            parts[i] = path;
        }
    }
    let results = results.into_iter().flatten().collect();
    Ok(MergedAnalysis {
        report: plan.report(first.header.clone(), results),
        shards,
        parts,
    })
}

/// Writes a merged analysis into `dir` as an unsharded run does: `spectrum.json`,
/// `summary.csv` and a copy of every per-Hessian file under `classes/` (so the directory
/// can also be resumed and reported like any analysis).
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn write_merged(dir: &AnalysisDir, merged: &MergedAnalysis) -> Result<(), Error> {
    std::fs::create_dir_all(dir.parts()).map_err(|e| Error::io(&dir.parts(), e))?;
    let classes = merged.report.classes.iter().chain(&merged.report.all);
    for (source, result) in merged.parts.iter().zip(classes) {
        let bytes = std::fs::read(source).map_err(|e| Error::io(source, e))?;
        let target = dir.part(result.class);
        write_atomically(&target, bytes).map_err(|e| Error::io(&target, e))?;
    }
    write_report(dir, &merged.report)
}

fn json(value: &impl Serialize) -> Value {
    // Results always serialize (their maps have string keys).
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The first place where `a` and `b` differ: its path below `root` (`params.seed`,
/// `hessians[2].samples`) and both values as JSON, cut to 80 characters.
fn first_difference(root: &str, a: &Value, b: &Value) -> Option<(String, String, String)> {
    let below = |key: &str| {
        if root.is_empty() {
            key.to_string()
        } else {
            format!("{root}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            keys.into_iter().find_map(|k| {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                first_difference(&below(k), va, vb)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{root}[{i}]"), va, vb)),
        _ if a == b => None,
        _ => Some((
            if root.is_empty() {
                "the whole file".into()
            } else {
                root.to_string()
            },
            cut(a.to_string()),
            cut(b.to_string()),
        )),
    }
}

fn cut(mut text: String) -> String {
    const MAX: usize = 80;
    if text.chars().count() > MAX {
        text = text.chars().take(MAX).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{write_part, ClassSpectrum, HessianPart, PlannedHessian};

    const SPECTRUM: &str = include_str!("../tests/fixtures/spectrum.json");

    /// The fixture analysis split into `count` shards under `root`: each shard's directory
    /// (`shard-I-of-N`) with its manifest and per-Hessian files, as `analyze --shard` leaves
    /// them.
    struct Split {
        report: AnalysisReport,
        dirs: Vec<PathBuf>,
        plan: AnalysisPlan,
        header: AnalysisReport,
    }

    fn split(root: &std::path::Path, count: usize) -> Split {
        let report: AnalysisReport = serde_json::from_str(SPECTRUM).unwrap();
        let results: Vec<ClassSpectrum> =
            report.classes.iter().chain(&report.all).cloned().collect();
        let plan = AnalysisPlan {
            hessians: results
                .iter()
                .map(|r| PlannedHessian {
                    class: r.class,
                    samples: r.samples,
                    weight: r.samples as f64,
                })
                .collect(),
            trace_identity: true,
        };
        let header = AnalysisReport {
            classes: Vec::new(),
            all: None,
            trace_identity: None,
            ..report.clone()
        };
        let mut dirs = Vec::new();
        for shard in Shard::all(count) {
            let dir = root.join(shard.dir_name());
            let layout = AnalysisDir::new(&dir);
            std::fs::create_dir_all(layout.parts()).unwrap();
            let manifest = ShardManifest {
                shard,
                plan: plan.clone(),
                header: header.clone(),
            };
            write_manifest(&layout, &manifest).unwrap();
            for i in manifest.hessians() {
                let part = HessianPart {
                    key: PartKey::of(&header),
                    result: results[i].clone(),
                };
                write_part(&layout.part(results[i].class), &part).unwrap();
            }
            dirs.push(dir);
        }
        Split {
            report,
            dirs,
            plan,
            header,
        }
    }

    fn merge_error(dirs: &[PathBuf]) -> String {
        merge_shards(dirs).unwrap_err().to_string()
    }

    /// Merging the shards of a written report writes it back byte for byte, whatever the
    /// order the shards are given in, with every per-Hessian file copied.
    #[test]
    fn shards_merge_into_the_unsharded_report() {
        let root = tempfile::tempdir().unwrap();
        for count in [1, 2, 3, 6] {
            let split = split(&root.path().join(count.to_string()), count);
            let mut dirs = split.dirs.clone();
            dirs.reverse();
            let merged = merge_shards(&dirs).unwrap();
            assert_eq!(merged.shards.len(), count);
            assert_eq!(merged.shards[0].1, split.dirs[0]);
            let out = AnalysisDir::new(&root.path().join(format!("merged-{count}")));
            write_merged(&out, &merged).unwrap();
            let written = std::fs::read_to_string(out.spectrum()).unwrap();
            assert_eq!(
                written,
                serde_json::to_string_pretty(&split.report).unwrap()
            );
            assert_eq!(written, SPECTRUM, "N = {count}");
            for h in &split.plan.hessians {
                assert!(out.part(h.class).exists());
            }
        }
    }

    #[test]
    fn missing_doubled_and_foreign_directories_are_named() {
        let root = tempfile::tempdir().unwrap();
        let split = split(root.path(), 3);
        let [one, two, three] = [0, 1, 2].map(|i| split.dirs[i].clone());
        assert_eq!(
            merge_error(std::slice::from_ref(&two)),
            "missing shard 1/3 (all), shard 3/3 (class 1, class 2)"
        );
        assert_eq!(
            merge_error(&[one.clone(), two.clone(), two.clone(), three.clone()]),
            format!("shard 2/3 is given twice: {0} and {0}", two.display())
        );
        let stray = root.path().join("stray");
        std::fs::create_dir_all(&stray).unwrap();
        assert_eq!(
            merge_error(&[one.clone(), stray.clone()]),
            format!(
                "{}: no shard.json; not the output of `analyze --shard I/N`",
                stray.display()
            )
        );
        let other = self::split(&root.path().join("two"), 2);
        assert_eq!(
            merge_error(&[one.clone(), other.dirs[1].clone()]),
            format!(
                "{} is shard 1/3 but {} is shard 2/2: they come from different splits",
                one.display(),
                other.dirs[1].display()
            )
        );
        assert!(matches!(
            merge_shards(&[]),
            Err(MergeError::Coverage(CoverageError::Empty))
        ));
    }

    /// A shard of another seed (or checkpoint) is named with the field and both shards.
    #[test]
    fn shards_of_other_settings_or_checkpoints_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let split = split(root.path(), 2);
        let layout = AnalysisDir::new(&split.dirs[1]);
        let rewrite = |change: &dyn Fn(&mut AnalysisReport)| {
            let mut header = split.header.clone();
            change(&mut header);
            let manifest = ShardManifest {
                shard: Shard::new(2, 2).unwrap(),
                plan: split.plan.clone(),
                header,
            };
            write_manifest(&layout, &manifest).unwrap();
        };
        rewrite(&|h| h.params.seed = 7);
        assert_eq!(
            merge_error(&split.dirs),
            format!(
                "shards differ in params.seed: shard 1/2 ({}) has 0, shard 2/2 ({}) has 7",
                split.dirs[0].display(),
                split.dirs[1].display()
            )
        );
        rewrite(&|h| h.checkpoint.sha256 = "beef".into());
        let err = merge_error(&split.dirs);
        assert!(
            err.starts_with("shards differ in checkpoint.sha256: "),
            "{err}"
        );
        assert!(err.ends_with("has \"beef\""), "{err}");
        rewrite(&|_| ());
        assert!(merge_shards(&split.dirs).is_ok());
    }

    #[test]
    fn incomplete_and_stale_shards_say_how_to_finish() {
        let root = tempfile::tempdir().unwrap();
        let split = split(root.path(), 2);
        let layout = AnalysisDir::new(&split.dirs[1]);
        let part = layout.part(Some(1));
        let mut stored = read_part(&part).unwrap();
        std::fs::remove_file(&part).unwrap();
        assert_eq!(
            merge_error(&split.dirs),
            format!(
                "shard 2/2 ({}) is incomplete: no result for class 1; rerun it with the same command plus --resume",
                split.dirs[1].display()
            )
        );
        stored.key.params.lanczos_steps = 30;
        write_part(&part, &stored).unwrap();
        assert_eq!(
            merge_error(&split.dirs),
            format!(
                "{}: computed with another params.lanczos_steps than shard 2/2; rerun the shard with the same command plus --resume",
                part.display()
            )
        );
        stored.key.params.lanczos_steps = 20;
        stored.result.class = Some(2);
        write_part(&part, &stored).unwrap();
        let err = merge_error(&split.dirs);
        assert!(err.contains("holds the result of"), "{err}");
    }

    #[test]
    fn differences_are_named_by_their_json_path() {
        let a = serde_json::json!({"params": {"seed": 0, "m": 5}, "list": [1, 2], "x": "y"});
        let mut b = a.clone();
        assert_eq!(first_difference("", &a, &b), None);
        b["params"]["seed"] = 1.into();
        assert_eq!(
            first_difference("", &a, &b),
            Some(("params.seed".into(), "0".into(), "1".into()))
        );
        b = a.clone();
        b["list"][1] = 3.into();
        assert_eq!(first_difference("plan", &a, &b).unwrap().0, "plan.list[1]");
        b["list"] = serde_json::json!([1]);
        assert_eq!(
            first_difference("", &a, &b),
            Some(("list".into(), "[1,2]".into(), "[1]".into()))
        );
        b = a.clone();
        b["extra"] = true.into();
        assert_eq!(
            first_difference("", &a, &b),
            Some(("extra".into(), "null".into(), "true".into()))
        );
        let long = serde_json::json!("x".repeat(100));
        let (_, text, _) = first_difference("", &long, &Value::Null).unwrap();
        assert_eq!(text.chars().count(), 81);
    }
}
