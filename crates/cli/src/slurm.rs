//! Slurm job scripts for a sharded command: a job array whose task I runs shard I/N, a merge
//! job, and `submit.sh`, which queues the array and then the merge with
//! `--dependency=afterok` on it. saddlescope has no scheduler of its own: the scripts are
//! plain `sbatch` input, to read, edit and submit by hand.
//!
//! Any command that follows the sharding convention fits: it takes `--shard I/N`, `--out DIR`
//! and `--resume` (so a requeued or rerun task continues where it stopped), and
//! `saddlescope merge SHARD_DIR... --out DIR` merges its shards. `analyze` does (the merge
//! assembles the report), and so does `study` (the merge aggregates the cells).

use std::io;
use std::path::{Path, PathBuf};

/// What the jobs ask the scheduler for.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` limit of each job.
    pub time: Option<String>,
    /// `--cpus-per-task` of each shard (the merge takes one).
    pub cpus_per_task: usize,
    /// `--mem` of each shard.
    pub mem: Option<String>,
    /// `--gres` of each shard (`gpu:1` for a GPU job), or none for a CPU job.
    pub gres: Option<String>,
    /// More `#SBATCH` options for every job, verbatim (`--qos=long`).
    pub extra: Vec<String>,
}

/// A sharded command as job scripts. The layout under `out`: `shards/shard-I-of-N/` (each
/// shard's output), `slurm/` (the scripts) and `slurm/logs/` (Slurm's output files); the
/// merge writes into `out` itself.
#[derive(Debug, Clone)]
pub struct ShardedJobs {
    /// The subcommand, which names the jobs and scripts (`analyze`, `study`).
    pub name: String,
    /// The number of shards N, one array task each.
    pub shards: usize,
    /// The directory the jobs run in (`#SBATCH --chdir`): relative paths in `args` and
    /// `out` are relative to it, as on the command line that wrote the scripts.
    pub workdir: PathBuf,
    /// The `saddlescope` binary the jobs run.
    pub binary: PathBuf,
    /// The subcommand's arguments, less `--shard`, `--out` and `--resume`.
    pub args: Vec<String>,
    /// The merged result's directory.
    pub out: PathBuf,
    /// What each job asks for.
    pub resources: Resources,
}

/// One generated file.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    /// Where it goes.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl ShardedJobs {
    /// `out/slurm`: where the scripts go.
    pub fn script_dir(&self) -> PathBuf {
        self.out.join("slurm")
    }

    /// The job array, the merge job and `submit.sh`, in that order.
    pub fn scripts(&self) -> [Script; 3] {
        let dir = self.script_dir();
        [
            Script {
                path: dir.join(format!("{}.sbatch", self.name)),
                text: self.array_script(),
            },
            Script {
                path: dir.join("merge.sbatch"),
                text: self.merge_script(),
            },
            Script {
                path: dir.join("submit.sh"),
                text: self.submit_script(),
            },
        ]
    }

    /// Writes the scripts (`submit.sh` executable) and creates the log directory Slurm
    /// writes into (it does not create it).
    ///
    /// # Errors
    /// The first I/O error, with its path.
    pub fn write(&self) -> anyhow::Result<[Script; 3]> {
        use anyhow::Context;
        let logs = self.script_dir().join("logs");
        std::fs::create_dir_all(&logs).with_context(|| logs.display().to_string())?;
        let scripts = self.scripts();
        for script in &scripts {
            saddlescope_results::write_atomically(&script.path, &script.text)
                .and_then(|()| make_executable(&script.path))
                .with_context(|| script.path.display().to_string())?;
        }
        Ok(scripts)
    }

    fn array_script(&self) -> String {
        let n = self.shards;
        let name = &self.name;
        let mut text = format!(
            "#!/bin/bash\n\
             # Shard $SLURM_ARRAY_TASK_ID of {n} of `saddlescope {name}`, written by `saddlescope slurm {name}`.\n\
             # submit.sh queues it with the merge; rerun shard I alone (it resumes) with\n\
             #   sbatch --array=I {script}\n",
            script = quote(&self.script_dir().join(format!("{name}.sbatch")))
        );
        self.directives(&mut text, name, &format!("{name}-%A-%a.log"));
        text.push_str(&format!("#SBATCH --array=1-{n}\n"));
        text.push_str(&format!(
            "#SBATCH --cpus-per-task={}\n",
            self.resources.cpus_per_task
        ));
        for (option, value) in [("mem", &self.resources.mem), ("gres", &self.resources.gres)] {
            if let Some(value) = value {
                text.push_str(&format!("#SBATCH --{option}={value}\n"));
            }
        }
        self.extra_directives(&mut text);
        text.push_str(&format!(
            "set -euo pipefail\n\
             export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
             shard=\"${{SLURM_ARRAY_TASK_ID:?submit with sbatch: a job array sets SLURM_ARRAY_TASK_ID}}\"\n\
             exec {binary} {name} {args} \\\n    --shard \"$shard/{n}\" --out {shards}/\"shard-$shard-of-{n}\" --resume\n",
            binary = quote(&self.binary),
            args = self.args.iter().map(|a| quote_word(a)).collect::<Vec<_>>().join(" "),
            shards = quote(&self.out.join("shards")),
        ));
        text
    }

    fn merge_script(&self) -> String {
        let n = self.shards;
        let name = &self.name;
        let mut text = format!(
            "#!/bin/bash\n\
             # Merges the {n} shards of `saddlescope {name}` into {out}, written by `saddlescope slurm {name}`.\n\
             # submit.sh queues it to start once every shard has succeeded.\n",
            out = quote(&self.out)
        );
        self.directives(&mut text, "merge", "merge-%j.log");
        text.push_str("#SBATCH --cpus-per-task=1\n");
        self.extra_directives(&mut text);
        text.push_str(&format!(
            "set -euo pipefail\n\
             shards=()\n\
             for i in $(seq 1 {n}); do shards+=({shards}/\"shard-$i-of-{n}\"); done\n\
             exec {binary} merge \"${{shards[@]}}\" --out {out}\n",
            shards = quote(&self.out.join("shards")),
            binary = quote(&self.binary),
            out = quote(&self.out),
        ));
        text
    }

    fn submit_script(&self) -> String {
        let (n, name, dir) = (self.shards, &self.name, self.script_dir());
        format!(
            "#!/bin/bash\n\
             # Queues the {n} shards of `saddlescope {name}` as one job array and the merge as a job that\n\
             # starts once every shard has succeeded (afterok); written by `saddlescope slurm {name}`.\n\
             # If a shard fails, Slurm cancels the merge: rerun the shard (sbatch --array=I ...) and\n\
             # queue merge.sbatch after it.\n\
             set -euo pipefail\n\
             cd {workdir}\n\
             array=$(sbatch --parsable {array})\n\
             array=${{array%%;*}}\n\
             merge=$(sbatch --parsable --dependency=afterok:\"$array\" --kill-on-invalid-dep=yes {merge})\n\
             merge=${{merge%%;*}}\n\
             echo \"{name}: job array $array ({n} shards); merge: job $merge, once every shard has succeeded\"\n",
            workdir = quote(&self.workdir),
            array = quote(&dir.join(format!("{name}.sbatch"))),
            merge = quote(&dir.join("merge.sbatch")),
        )
    }

    /// The directives every job shares.
    fn directives(&self, text: &mut String, job: &str, log: &str) {
        text.push_str(&format!("#SBATCH --job-name=saddlescope-{job}\n"));
        text.push_str(&format!(
            "#SBATCH --chdir={}\n",
            directive_value(&self.workdir)
        ));
        text.push_str(&format!(
            "#SBATCH --output={}\n",
            directive_value(&self.script_dir().join("logs").join(log))
        ));
        let r = &self.resources;
        for (option, value) in [
            ("partition", &r.partition),
            ("account", &r.account),
            ("time", &r.time),
        ] {
            if let Some(value) = value {
                text.push_str(&format!("#SBATCH --{option}={value}\n"));
            }
        }
    }

    fn extra_directives(&self, text: &mut String) {
        for option in &self.resources.extra {
            text.push_str(&format!("#SBATCH {option}\n"));
        }
    }
}

/// A path as one shell word.
fn quote(path: &Path) -> String {
    quote_word(&path.display().to_string())
}

/// `word` as one shell word: as it is when it has no character the shell treats specially,
/// else in single quotes (a `'` inside written `'\''`).
fn quote_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=/.,:@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A path as an `#SBATCH` option value: sbatch reads the rest of the line after `=` and
/// unquotes double quotes.
fn directive_value(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(gres: Option<&str>) -> ShardedJobs {
        ShardedJobs {
            name: "analyze".into(),
            shards: 4,
            workdir: "/home/me/project".into(),
            binary: "/opt/saddlescope/bin/saddlescope".into(),
            args: [
                "runs/ce-drw/last.safetensors",
                "--device",
                "cuda",
                "--seed",
                "7",
            ]
            .map(String::from)
            .to_vec(),
            out: "analyses/ce drw".into(),
            resources: Resources {
                partition: Some("gpu".into()),
                account: None,
                time: Some("12:00:00".into()),
                cpus_per_task: 8,
                mem: Some("32G".into()),
                gres: gres.map(String::from),
                extra: vec!["--qos=long".into()],
            },
        }
    }

    /// The scripts as committed under `tests/fixtures/slurm/` (a GPU job; an output
    /// directory with a space, to see the quoting).
    #[test]
    fn scripts_match_the_golden_files() {
        let [array, merge, submit] = jobs(Some("gpu:1")).scripts();
        let golden = [
            (
                array,
                include_str!("../../../tests/fixtures/slurm/analyze.sbatch"),
            ),
            (
                merge,
                include_str!("../../../tests/fixtures/slurm/merge.sbatch"),
            ),
            (
                submit,
                include_str!("../../../tests/fixtures/slurm/submit.sh"),
            ),
        ];
        for (script, expected) in golden {
            assert_eq!(script.text, expected, "{}", script.path.display());
        }
    }

    #[test]
    fn a_cpu_job_asks_for_no_gpu_and_paths_land_in_the_script_dir() {
        let jobs = jobs(None);
        let [array, merge, submit] = jobs.scripts();
        assert!(!array.text.contains("--gres"));
        assert!(array.text.contains("#SBATCH --cpus-per-task=8\n"));
        assert_eq!(
            array.path,
            Path::new("analyses/ce drw/slurm/analyze.sbatch")
        );
        assert_eq!(merge.path, Path::new("analyses/ce drw/slurm/merge.sbatch"));
        assert_eq!(submit.path, Path::new("analyses/ce drw/slurm/submit.sh"));
    }

    #[test]
    fn words_are_quoted_only_when_the_shell_would_split_or_expand_them() {
        assert_eq!(
            quote_word("runs/a-b_c.safetensors"),
            "runs/a-b_c.safetensors"
        );
        assert_eq!(quote_word("--class-ids=0,7"), "--class-ids=0,7");
        assert_eq!(quote_word("a b"), "'a b'");
        assert_eq!(quote_word("$HOME"), "'$HOME'");
        assert_eq!(quote_word("it's"), "'it'\\''s'");
        assert_eq!(quote_word(""), "''");
    }
}
