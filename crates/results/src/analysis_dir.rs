//! The layout of an analysis directory (`analyze --out DIR`): where each of its files lives.

use std::path::{Path, PathBuf};

/// Output paths of an analysis directory.
pub struct AnalysisDir(PathBuf);

impl AnalysisDir {
    /// The directory at `path`.
    pub fn new(path: &Path) -> Self {
        Self(path.to_path_buf())
    }
    /// `spectrum.json`.
    pub fn spectrum(&self) -> PathBuf {
        self.0.join("spectrum.json")
    }
    /// `summary.csv`.
    pub fn summary(&self) -> PathBuf {
        self.0.join("summary.csv")
    }
    /// `shard.json`: which shard of a sharded analysis the directory holds
    /// ([`ShardManifest`](crate::ShardManifest)); `merge` reads it.
    pub fn manifest(&self) -> PathBuf {
        self.0.join("shard.json")
    }
    /// `classes/`: one file per finished Hessian, reused by `analyze --resume`.
    pub fn parts(&self) -> PathBuf {
        self.0.join("classes")
    }
    /// `classes/class-NNNN.json` (or `classes/all.json` for `None`, the all-classes
    /// Hessian): one finished Hessian's result.
    pub fn part(&self, class: Option<usize>) -> PathBuf {
        let name = class.map_or("all".to_string(), class_stem);
        self.parts().join(format!("{name}.json"))
    }
    /// `landscape/`: the loss landscapes of `analyze --landscape`, one directory per class.
    pub fn landscapes(&self) -> PathBuf {
        self.0.join("landscape")
    }
    /// `landscape/class-NNNN/`: the loss landscape of class `class`.
    pub fn landscape(&self, class: usize) -> PathBuf {
        self.landscapes().join(class_stem(class))
    }
}

/// `class-NNNN`: the file or directory name of a class's results.
fn class_stem(class: usize) -> String {
    format!("class-{class:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_have_the_documented_names() {
        let dir = AnalysisDir::new(Path::new("out"));
        assert_eq!(dir.spectrum(), Path::new("out/spectrum.json"));
        assert_eq!(dir.summary(), Path::new("out/summary.csv"));
        assert_eq!(dir.manifest(), Path::new("out/shard.json"));
        assert_eq!(dir.part(Some(7)), Path::new("out/classes/class-0007.json"));
        assert_eq!(dir.part(None), Path::new("out/classes/all.json"));
        assert_eq!(dir.landscape(12), Path::new("out/landscape/class-0012"));
    }
}
