//! What each command writes into its output directory: the names that tell whether a
//! directory already holds such output, and that `--force` removes before writing anew.

/// The outputs of one command.
#[derive(Debug)]
pub struct Outputs {
    /// The command, as its record is named.
    pub command: &'static str,
    /// What the outputs are, for messages: `a run`, `an analysis`.
    pub what: &'static str,
    /// Entry names: `name` a file, `name/` a directory, `*.ext` every file with that
    /// extension.
    pub names: &'static [&'static str],
}

/// `train`: a run directory.
pub const TRAIN: Outputs = Outputs {
    command: "train",
    what: "a run",
    names: &["log.jsonl", "*.safetensors"],
};

/// `analyze`: an analysis directory.
pub const ANALYZE: Outputs = Outputs {
    command: "analyze",
    what: "an analysis",
    names: &["spectrum.json", "summary.csv", "classes/", "landscape/"],
};

/// `merge`: an analysis assembled from its shards (the files an unsharded `analyze`
/// writes).
pub const MERGE: Outputs = Outputs {
    command: "merge",
    what: "a merged analysis",
    names: &["spectrum.json", "summary.csv", "classes/"],
};

/// `landscape`.
pub const LANDSCAPE: Outputs = Outputs {
    command: "landscape",
    what: "a landscape",
    names: &["landscape.json", "landscape.png", "plane.png"],
};

/// `plot`: the figures of an analysis.
pub const PLOT: Outputs = Outputs {
    command: "plot",
    what: "figures",
    names: &["density/", "*.png", "*.svg"],
};

/// `report`.
pub const REPORT: Outputs = Outputs {
    command: "report",
    what: "a report",
    names: &["report.md", "report.html", "figures/"],
};

/// `compare`: a report of two analyses and their deltas.
pub const COMPARE: Outputs = Outputs {
    command: "compare",
    what: "a comparison",
    names: &["deltas.csv", "report.md", "report.html", "figures/"],
};

/// `spectrum`.
pub const SPECTRUM: Outputs = Outputs {
    command: "spectrum",
    what: "a spectrum",
    names: &["spectrum.json"],
};

/// `demo`: a small study (each cell's run and analysis directory has its own record).
pub const DEMO: Outputs = Outputs {
    command: "demo",
    what: "a demo",
    names: STUDY_FILES,
};

/// What a study writes (a shard writes its cells and `study-shard.json`).
const STUDY_FILES: &[&str] = &[
    "cells/",
    "study-shard.json",
    "study.json",
    "study.csv",
    "cells.csv",
    "report.md",
    "report.html",
    "figures/",
];

/// `study`: cells (each run and analysis directory has its own record), the aggregates and
/// the report; also a `merge` of a study's shards.
pub const STUDY: Outputs = Outputs {
    command: "study",
    what: "a study",
    names: STUDY_FILES,
};

/// Every command's outputs, to tell whose files a directory holds.
pub const ALL: [&Outputs; 10] = [
    &TRAIN, &ANALYZE, &MERGE, &LANDSCAPE, &PLOT, &REPORT, &COMPARE, &SPECTRUM, &DEMO, &STUDY,
];

impl Outputs {
    /// Whether the entry `name` (a directory when `is_dir`) is one of these outputs.
    pub fn covers(&self, name: &str, is_dir: bool) -> bool {
        self.names.iter().any(|pattern| {
            if let Some(dir) = pattern.strip_suffix('/') {
                is_dir && name == dir
            } else if let Some(ext) = pattern.strip_prefix('*') {
                !is_dir && name.ends_with(ext)
            } else {
                !is_dir && name == *pattern
            }
        })
    }

    /// The command whose outputs these are, by its record name.
    pub fn of(command: &str) -> Option<&'static Outputs> {
        ALL.into_iter().find(|o| o.command == command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_tell_files_from_directories() {
        assert!(TRAIN.covers("epoch-0010.safetensors", false));
        assert!(TRAIN.covers("log.jsonl", false));
        assert!(!TRAIN.covers("notes.txt", false));
        assert!(ANALYZE.covers("classes", true));
        assert!(!ANALYZE.covers("classes", false));
        assert!(PLOT.covers("density_grid.svg", false));
        assert!(!PLOT.covers("x.png", true));
        assert_eq!(Outputs::of("report").unwrap().what, "a report");
        assert!(Outputs::of("bench").is_none());
    }
}
