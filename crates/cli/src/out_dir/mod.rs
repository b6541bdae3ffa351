//! Output directories: one writer at a time, and nothing lost or silently mixed.
//!
//! Every command that writes a directory first takes it with [`OutDir::lock`]: a second
//! writer fails at once with one line naming the first (see [`lock`]). It then claims it for
//! its outputs with [`OutDir::claim`], which compares the settings recorded by the last run
//! of the same command in that directory ([`record`]) with its own:
//! - an empty directory, or one without this command's outputs: written fresh;
//! - the same settings: the command resumes (training, analysis) or redoes the same work;
//! - other settings, or files of these names that saddlescope did not record (another
//!   program's, an older saddlescope's): refused with one line saying what differs, unless
//!   `--force`, which removes this command's old outputs (never anything else) first.
//!
//! Dropping an [`OutDir`] releases the lock, forgets a record whose outputs never appeared
//! (a run that failed before writing anything) and removes the directory again if this
//! process created it and it stayed empty.
//!
//! A command that splits its work over several directories (e.g. shards of one analysis)
//! takes one [`OutDir`] per directory; the lock is per directory.

pub mod lock;
pub mod outputs;
pub mod record;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::error::usage;
use lock::{Acquired, DirLock, LOCK_FILE};
pub use outputs::Outputs;
use record::{differences, Record, Records, RECORD_FILE};

/// What a claimed directory held before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// None of this command's outputs.
    Empty,
    /// This command's outputs, made with the same settings.
    Same,
    /// Other outputs of these names, removed under `--force`.
    Replaced,
}

/// A locked output directory.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    created: bool,
    claimed: Option<&'static Outputs>,
    lock: Option<DirLock>,
}

impl OutDir {
    /// Creates `path` if needed and locks it for this process. A lock left by a process
    /// that is gone is taken over, with a note on stderr unless `quiet`; `force` also takes
    /// over a lock left on another host.
    ///
    /// # Errors
    /// The directory cannot be created, or another process holds it (one line naming it).
    pub fn lock(path: &Path, force: bool, quiet: bool) -> anyhow::Result<Self> {
        let created = !path.exists();
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let (lock, acquired) = match DirLock::acquire(path, force) {
            Ok(lock) => lock,
            Err(err) => {
                if created {
                    let _ = std::fs::remove_dir(path);
                }
                return Err(err.into());
            }
        };
        crate::interrupt::release_on_interrupt(lock.path());
        if let (Acquired::TakenOver(old), false) = (&acquired, quiet) {
            eprintln!(
                "note: {}: took over the lock left by {}",
                path.display(),
                old.describe()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            created,
            claimed: None,
            lock: Some(lock),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Claims the directory for `outputs` made with `settings` (see the module doc) and
    /// records them.
    ///
    /// # Errors
    /// A usage error naming the directory and what it holds when it holds other outputs of
    /// these names and `force` is not set; I/O errors naming the file.
    pub fn claim(
        &mut self,
        outputs: &'static Outputs,
        settings: &Value,
        force: bool,
    ) -> anyhow::Result<Prior> {
        let mut records = match Records::read(&self.path) {
            Err(_) if force => Records::default(),
            read => read?,
        };
        let ours: Vec<String> = self
            .entries()?
            .into_iter()
            .filter(|(name, is_dir)| outputs.covers(name, *is_dir))
            .map(|(name, is_dir)| if is_dir { name + "/" } else { name })
            .collect();
        let recorded = records.0.get(outputs.command);
        let conflict = match recorded {
            _ if ours.is_empty() => None,
            Some(r) if r.settings == *settings => {
                self.claimed = Some(outputs);
                return Ok(Prior::Same);
            }
            Some(r) => Some(format!(
                "holds {} made with other settings ({})",
                outputs.what,
                differences(&r.settings, settings)
            )),
            None => Some(self.unrecorded(&records, outputs, &ours)),
        };
        let prior = match conflict {
            None => Prior::Empty,
            Some(why) if !force => {
                let resume = if outputs.command == "train" {
                    format!(
                        "continue it with `saddlescope train --resume {}`, ",
                        self.path.display()
                    )
                } else {
                    String::new()
                };
                return Err(usage(format!(
                    "{}: {why}; {resume}add --force to replace it, or choose another --out",
                    self.path.display()
                )));
            }
            Some(_) => {
                for name in &ours {
                    let path = self.path.join(name.trim_end_matches('/'));
                    let removed = if name.ends_with('/') {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    removed.with_context(|| format!("--force: removing {}", path.display()))?;
                }
                Prior::Replaced
            }
        };
        records.0.insert(
            outputs.command.to_string(),
            Record {
                version: env!("CARGO_PKG_VERSION").to_string(),
                settings: settings.clone(),
            },
        );
        records.write(&self.path)?;
        self.claimed = Some(outputs);
        Ok(prior)
    }

    /// Records `settings` for `outputs` without comparing (a run continued on request,
    /// whose plan may have changed with it).
    ///
    /// # Errors
    /// The record cannot be read or written, naming the file.
    pub fn record(&mut self, outputs: &'static Outputs, settings: &Value) -> anyhow::Result<()> {
        let mut records = Records::read(&self.path)?;
        records.0.insert(
            outputs.command.to_string(),
            Record {
                version: env!("CARGO_PKG_VERSION").to_string(),
                settings: settings.clone(),
            },
        );
        records.write(&self.path)?;
        self.claimed = Some(outputs);
        Ok(())
    }

    /// Why outputs that no record of this command covers are in the way: another
    /// command's (by its record), or files saddlescope did not record.
    fn unrecorded(&self, records: &Records, outputs: &Outputs, ours: &[String]) -> String {
        let owner = records
            .0
            .keys()
            .filter_map(|command| Outputs::of(command))
            .find(|other| {
                other.command != outputs.command
                    && ours
                        .iter()
                        .any(|n| other.covers(n.trim_end_matches('/'), n.ends_with('/')))
            });
        match owner {
            Some(other) => format!(
                "holds {} of `saddlescope {}` ({})",
                other.what,
                other.command,
                ours.join(", ")
            ),
            None => format!(
                "holds files saddlescope did not record ({}), made by hand or by an older saddlescope",
                ours.join(", ")
            ),
        }
    }

    /// The directory's entries (name, is a directory) but the lock, the record and the
    /// atomic writer's temporary files.
    fn entries(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let read =
            std::fs::read_dir(&self.path).with_context(|| self.path.display().to_string())?;
        let mut entries = Vec::new();
        for entry in read {
            let entry = entry.with_context(|| self.path.display().to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == LOCK_FILE || name == RECORD_FILE || is_temporary(&name) {
                continue;
            }
            entries.push((name, entry.path().is_dir()));
        }
        entries.sort();
        Ok(entries)
    }

    /// After a run that wrote none of its outputs: their empty directories removed, the
    /// record forgotten.
    fn forget_if_nothing_written(&self, outputs: &Outputs) {
        for name in outputs.names.iter().filter_map(|n| n.strip_suffix('/')) {
            // Fails, as it should, unless the directory is empty.
            let _ = std::fs::remove_dir(self.path.join(name));
        }
        let Ok(entries) = self.entries() else {
            return;
        };
        if entries.iter().any(|(name, dir)| outputs.covers(name, *dir)) {
            return;
        }
        if let Ok(mut records) = Records::read(&self.path) {
            if records.0.remove(outputs.command).is_some() {
                let _ = records.write(&self.path);
            }
        }
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if let Some(outputs) = self.claimed {
            self.forget_if_nothing_written(outputs);
        }
        if let Some(lock) = self.lock.take() {
            crate::interrupt::forget(lock.path());
        }
        if self.created {
            // Succeeds only when nothing is left in it.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// An input directory or file as a record names it: its canonical path (the same input
/// however it is spelled on the command line), or the path as given if it cannot be
/// resolved.
pub fn input_id(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The atomic writer's temporary files (`.NAME.tmp.PID.N`, see
/// `saddlescope_results::write_atomically`): a killed writer may leave one behind.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp.")
}

#[cfg(test)]
mod tests {
    use super::outputs::{ANALYZE, REPORT, TRAIN};
    use super::*;
    use serde_json::json;

    fn message(err: anyhow::Error) -> String {
        assert!(
            err.downcast_ref::<crate::error::UsageError>().is_some(),
            "a usage error: {err:#}"
        );
        err.to_string()
    }

    #[test]
    fn same_settings_resume_other_settings_need_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let settings = json!({"epochs": 10, "lr": 0.05});
        {
            let mut out = OutDir::lock(&dir, false, true).unwrap();
            assert_eq!(out.claim(&TRAIN, &settings, false).unwrap(), Prior::Empty);
            std::fs::write(dir.join("log.jsonl"), "x").unwrap();
            std::fs::write(dir.join("epoch-0010.safetensors"), "x").unwrap();
        }
        assert!(
            !dir.join(LOCK_FILE).exists(),
            "the lock goes with the OutDir"
        );
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        assert_eq!(out.claim(&TRAIN, &settings, false).unwrap(), Prior::Same);
        drop(out);

        let other = json!({"epochs": 30, "lr": 0.05});
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        let err = message(out.claim(&TRAIN, &other, false).unwrap_err());
        let d = dir.display();
        assert_eq!(
            err,
            format!(
                "{d}: holds a run made with other settings (epochs: 10 there, 30 asked); \
                 continue it with `saddlescope train --resume {d}`, add --force to replace it, \
                 or choose another --out"
            )
        );
        assert!(
            dir.join("epoch-0010.safetensors").exists(),
            "nothing removed"
        );
        assert_eq!(out.claim(&TRAIN, &other, true).unwrap(), Prior::Replaced);
        assert!(!dir.join("epoch-0010.safetensors").exists());
        assert!(!dir.join("log.jsonl").exists());
        let records = Records::read(&dir).unwrap();
        assert_eq!(records.0["train"].settings, other);
    }

    #[test]
    fn files_nobody_recorded_are_never_replaced_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("an");
        std::fs::create_dir_all(dir.join("classes")).unwrap();
        std::fs::write(dir.join("spectrum.json"), "{}").unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        let err = message(out.claim(&ANALYZE, &json!({}), false).unwrap_err());
        assert!(
            err.contains("holds files saddlescope did not record (classes/, spectrum.json)"),
            "{err}"
        );
        assert_eq!(
            out.claim(&ANALYZE, &json!({}), true).unwrap(),
            Prior::Replaced
        );
        assert!(!dir.join("spectrum.json").exists() && !dir.join("classes").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn another_commands_outputs_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        {
            let mut out = OutDir::lock(&dir, false, true).unwrap();
            out.claim(&REPORT, &json!({"inputs": ["a"]}), false)
                .unwrap();
            std::fs::write(dir.join("report.md"), "# r").unwrap();
        }
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        let err = message(
            out.claim(&super::outputs::COMPARE, &json!({}), false)
                .unwrap_err(),
        );
        assert!(
            err.contains("holds a report of `saddlescope report` (report.md)"),
            "{err}"
        );
        // Outputs of another command that do not collide are left alone.
        assert_eq!(out.claim(&TRAIN, &json!({}), false).unwrap(), Prior::Empty);
    }

    #[test]
    fn a_failed_first_run_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new");
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        out.claim(&ANALYZE, &json!({"x": 1}), false).unwrap();
        std::fs::create_dir_all(dir.join("classes")).unwrap();
        drop(out);
        assert!(!dir.exists(), "created, left empty, removed");

        // An existing directory keeps what it held, without the record of a run that
        // wrote nothing.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let mut out = OutDir::lock(&dir, false, true).unwrap();
        out.claim(&ANALYZE, &json!({"x": 1}), false).unwrap();
        drop(out);
        assert!(!dir.join(RECORD_FILE).exists());
        assert!(dir.join("notes.txt").exists());
    }

    #[test]
    fn temporary_files_and_the_lock_are_not_outputs() {
        assert!(is_temporary(".last.safetensors.tmp.12.0"));
        assert!(!is_temporary("last.safetensors"));
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".resume.safetensors.tmp.1.0"), "half").unwrap();
        let mut out = OutDir::lock(tmp.path(), false, true).unwrap();
        assert_eq!(out.claim(&TRAIN, &json!({}), false).unwrap(), Prior::Empty);
    }
}
