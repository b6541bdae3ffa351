//! `DIR/.saddlescope.json`: for each command that wrote into a directory, the settings it
//! wrote with, so that a later command can tell "the same again" (resume or redo) from
//! "something different" (refused without `--force`), and say what differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use saddlescope_results::write_atomically;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the record file inside an output directory.
pub const RECORD_FILE: &str = ".saddlescope.json";

/// What one command recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The saddlescope version that wrote it.
    pub version: String,
    /// The settings that define the command's outputs (the same settings give the same
    /// outputs).
    pub settings: Value,
}

/// Every command's record in one directory, by command name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Records(pub BTreeMap<String, Record>);

fn path(dir: &Path) -> PathBuf {
    dir.join(RECORD_FILE)
}

impl Records {
    /// The records of `dir`; none when it has no record file.
    ///
    /// # Errors
    /// A record file that cannot be read or parsed, naming it.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a saddlescope record (remove it, or add --force)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| path.display().to_string()),
        }
    }

    /// Writes the records into `dir` atomically (removes the file when there are none).
    ///
    /// # Errors
    /// The file cannot be written, naming it.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = path(dir);
        if self.0.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| path.display().to_string())
                }
                _ => Ok(()),
            };
        }
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        write_atomically(&path, json).with_context(|| path.display().to_string())
    }
}

/// The settings that differ between `recorded` and `asked`, at most three, as
/// `epochs: 10 there, 30 asked` (nested keys joined by dots), then `and N more`.
pub fn differences(recorded: &Value, asked: &Value) -> String {
    let mut found = Vec::new();
    collect("", recorded, asked, &mut found);
    let shown = found.len().min(3);
    let mut text = found[..shown].join("; ");
    if found.len() > shown {
        text.push_str(&format!("; and {} more", found.len() - shown));
    }
    text
}

fn collect(at: &str, recorded: &Value, asked: &Value, found: &mut Vec<String>) {
    if recorded == asked {
        return;
    }
    if let (Value::Object(a), Value::Object(b)) = (recorded, asked) {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let nested = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            collect(
                &nested,
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null),
                found,
            );
        }
        return;
    }
    let name = if at.is_empty() { "settings" } else { at };
    found.push(format!(
        "{name}: {} there, {} asked",
        show(recorded),
        show(asked)
    ));
}

/// A value as a user would type it: strings bare, `null` as `none`.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_the_settings_that_changed() {
        let a = json!({"epochs": 10, "sam": {"rho": 0.2, "from": 1}, "dataset": "mnist10k"});
        let b = json!({"epochs": 30, "sam": {"rho": 0.5, "from": 1}, "dataset": "mnist10k"});
        assert_eq!(
            differences(&a, &b),
            "epochs: 10 there, 30 asked; sam.rho: 0.2 there, 0.5 asked"
        );
        let c = json!({"a": 1, "b": 2, "c": 3, "d": null, "e": "x"});
        let d = json!({"a": 2, "b": 3, "c": 4, "d": 5, "e": "y"});
        assert_eq!(
            differences(&c, &d),
            "a: 1 there, 2 asked; b: 2 there, 3 asked; c: 3 there, 4 asked; and 2 more"
        );
        assert_eq!(
            differences(&json!({"quick": true}), &json!({})),
            "quick: true there, none asked"
        );
    }

    #[test]
    fn records_round_trip_and_an_empty_set_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Records::read(dir.path()).unwrap(), Records::default());
        let mut records = Records::default();
        records.0.insert(
            "train".into(),
            Record {
                version: "0.1.0".into(),
                settings: json!({"epochs": 3}),
            },
        );
        records.write(dir.path()).unwrap();
        assert_eq!(Records::read(dir.path()).unwrap(), records);
        Records::default().write(dir.path()).unwrap();
        assert!(!dir.path().join(RECORD_FILE).exists());
        std::fs::write(dir.path().join(RECORD_FILE), "not json").unwrap();
        let err = format!("{:#}", Records::read(dir.path()).unwrap_err());
        assert!(
            err.contains(".saddlescope.json: not a saddlescope record"),
            "{err}"
        );
    }
}
