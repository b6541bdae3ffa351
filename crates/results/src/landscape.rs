//! A class's loss landscape as `landscape.json` holds it: the class loss along the unit
//! eigenvectors of λ_max and λ_min and a random direction, next to the second-order model,
//! and optionally on the (u_max, u_min) plane (`saddlescope_analysis::landscape` samples
//! it). Field names are the JSON keys.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{write_atomically, AnalysisDir, Error};

/// File name of a landscape in its directory.
pub const LANDSCAPE_FILE: &str = "landscape.json";

/// Which direction a curve follows. Serialized as `"max"`, `"min"`, `"random"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionKind {
    /// The unit Ritz vector of λ_max.
    Max,
    /// The unit Ritz vector of λ_min (the saddle direction when λ_min < 0).
    Min,
    /// A seeded Gaussian direction, normalized.
    Random,
}

impl DirectionKind {
    /// `"max"`, `"min"` or `"random"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectionKind::Max => "max",
            DirectionKind::Min => "min",
            DirectionKind::Random => "random",
        }
    }
}

/// The loss along one unit direction u, oriented so that `g·u ≤ 0` (the loss decreases to
/// first order for t > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionCurve {
    /// Which direction.
    pub name: DirectionKind,
    /// The curvature along u: the Ritz value for `max`/`min`, the Rayleigh quotient `uᵀHu`
    /// for `random`.
    pub eigenvalue: f64,
    /// `‖Hu − eigenvalue·u‖`: the Ritz residual bound for `max`/`min` (an eigenvalue of H
    /// lies within it), the true residual for `random` (large: it is no eigenvector).
    pub bound: f64,
    /// The grid, `[-R, R]`, t = 0 in the middle.
    pub t: Vec<f64>,
    /// `L(w + t·u)` on the grid.
    pub loss: Vec<f64>,
    /// `L(w) + t·g·u + ½·eigenvalue·t²` on the grid.
    pub quadratic: Vec<f64>,
}

impl DirectionCurve {
    /// The grid point of lowest loss, `(t, loss)` (the first one on ties).
    pub fn lowest(&self) -> (f64, f64) {
        self.t
            .iter()
            .zip(&self.loss)
            .fold(
                (0.0, f64::INFINITY),
                |best, (&t, &l)| {
                    if l < best.1 {
                        (t, l)
                    } else {
                        best
                    }
                },
            )
    }
}

/// The loss on the (u_max, u_min) plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plane {
    /// Grid along u_max.
    pub s: Vec<f64>,
    /// Grid along u_min.
    pub t: Vec<f64>,
    /// `loss[i][j] = L(w + s[i]·u_max + t[j]·u_min)`.
    pub loss: Vec<Vec<f64>>,
}

/// A class's loss landscape: the content of `landscape.json`. Field names are the JSON
/// keys; `plane` is left out when not asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeReport {
    /// Class index.
    pub class: usize,
    /// `L(w)`, the class loss at the checkpoint.
    pub loss0: f64,
    /// `max`, `min`, `random`, in this order.
    pub directions: Vec<DirectionCurve>,
    /// The (u_max, u_min) plane, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<Plane>,
}

impl LandscapeReport {
    /// The curve along `kind`.
    pub fn direction(&self, kind: DirectionKind) -> Option<&DirectionCurve> {
        self.directions.iter().find(|d| d.name == kind)
    }
}

/// Writes `dir/landscape.json` atomically (creating `dir`) and returns its path.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_landscape(dir: &Path, report: &LandscapeReport) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LANDSCAPE_FILE);
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::encode(&path, e))?;
    write_atomically(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Reads a `landscape.json`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] naming the file.
pub fn read_landscape(path: &Path) -> Result<LandscapeReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt(path, e))
}

/// The landscapes of an analysis directory (`landscape/class-*/landscape.json`), by class;
/// empty when it has none.
///
/// # Errors
/// As [`read_landscape`], or [`Error::Io`] when `landscape/` cannot be listed.
pub fn read_landscapes(dir: &AnalysisDir) -> Result<Vec<LandscapeReport>, Error> {
    let root = dir.landscapes();
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| Error::io(&root, e))? {
        let path = entry
            .map_err(|e| Error::io(&root, e))?
            .path()
            .join(LANDSCAPE_FILE);
        if path.is_file() {
            reports.push(read_landscape(&path)?);
        }
    }
    reports.sort_by_key(|r| r.class);
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `landscape.json` written by `saddlescope landscape --class 1 --plane --points 9
    /// --plane-points 5` on the tiny synthetic run of the CLI tests.
    const LANDSCAPE: &str = include_str!("../tests/fixtures/landscape.json");

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn landscape_json_reads_and_writes_back_byte_for_byte() {
        let report: LandscapeReport = serde_json::from_str(LANDSCAPE).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write_landscape(&dir.path().join("class-0001"), &report).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), LANDSCAPE);
        assert_eq!(read_landscape(&path).unwrap(), report);
        assert_eq!(report.class, 1);
        let min = report.direction(DirectionKind::Min).unwrap();
        assert_eq!(min.t.len(), 9);
        let (t, lowest) = min.lowest();
        assert!(lowest <= report.loss0 && min.t.contains(&t));
        assert_eq!(report.plane.as_ref().unwrap().loss.len(), 5);
    }

    #[test]
    fn json_has_the_issue_keys_and_round_trips() {
        let mut r: LandscapeReport = serde_json::from_str(LANDSCAPE).unwrap();
        r.class = 3;
        r.plane = None;
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(keys(&value), ["class", "directions", "loss0"]);
        assert_eq!(
            keys(&value["directions"][0]),
            ["bound", "eigenvalue", "loss", "name", "quadratic", "t"]
        );
        let names: Vec<&str> = (0..3)
            .map(|i| value["directions"][i]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["max", "min", "random"]);
        let dir = tempfile::tempdir().unwrap();
        let analysis = AnalysisDir::new(dir.path());
        assert!(read_landscapes(&analysis).unwrap().is_empty());
        let path = write_landscape(&analysis.landscape(3), &r).unwrap();
        assert_eq!(path, dir.path().join("landscape/class-0003/landscape.json"));
        assert_eq!(read_landscape(&path).unwrap(), r);
        r.class = 1;
        r.plane = Some(Plane {
            s: vec![-1.0, 0.0, 1.0],
            t: vec![-2.0, 0.0, 2.0],
            loss: vec![vec![0.1; 3]; 3],
        });
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(keys(&value), ["class", "directions", "loss0", "plane"]);
        assert_eq!(keys(&value["plane"]), ["loss", "s", "t"]);
        write_landscape(&analysis.landscape(1), &r).unwrap();
        let all = read_landscapes(&analysis).unwrap();
        assert_eq!(all.iter().map(|r| r.class).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(all[0], r);
    }

    #[test]
    fn a_bad_landscape_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LANDSCAPE_FILE);
        std::fs::write(&path, "{\"class\": 1}").unwrap();
        let err = read_landscape(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: missing field", path.display())),
            "{err}"
        );
    }
}
