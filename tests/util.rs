//! Helpers of the end-to-end tests: run the built `saddlescope` binary, check exit codes
//! and the one-line error contract.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// The `saddlescope` binary built by cargo for these tests.
pub fn saddlescope() -> Command {
    let mut cmd = Command::cargo_bin("saddlescope").expect("binary built");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// A `std::process::Command` for the binary (spawnable, unlike assert_cmd's).
pub fn saddlescope_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("saddlescope"));
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// Waits (up to two minutes) until `ready` holds.
pub fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Number of lines of `DIR/log.jsonl` (0 without one).
pub fn log_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("log.jsonl")).map_or(0, |t| t.lines().count())
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    saddlescope().args(args).output().expect("binary runs")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failure with exit `code` and exactly one stderr line, starting `error:` and
/// containing `needle`, with no panic and no backtrace.
pub fn assert_one_line_error(output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("error:"), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// Parses a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small seeded training run, the end-to-end tests' fixture: by default 3 classes of
/// 6-dimensional Gaussians (`synthetic:classes=3,dim=6,n=40,test=10,seed=1`, ratio 10), an
/// MLP with 8 hidden units, 4 epochs of batch 16 at lr 0.1: a checkpoint in about a second.
pub struct TinyRun {
    settings: Vec<(&'static str, String)>,
    flags: Vec<String>,
}

impl Default for TinyRun {
    fn default() -> Self {
        let settings = [
            ("--dataset", "synthetic:classes=3,dim=6,n=40,test=10,seed=1"),
            ("--ratio", "10"),
            ("--model", "mlp:8"),
            ("--epochs", "4"),
            ("--batch-size", "16"),
            ("--lr", "0.1"),
        ];
        Self {
            settings: settings.iter().map(|(f, v)| (*f, v.to_string())).collect(),
            flags: Vec::new(),
        }
    }
}

impl TinyRun {
    /// A run long enough to be interrupted or raced mid-way: 40 epochs of an MLP on 1,600
    /// samples, SAM and DRW (a few seconds).
    pub fn long() -> Self {
        TinyRun::default()
            .set(
                "--dataset",
                "synthetic:classes=4,dim=32,n=400,test=20,seed=2",
            )
            .set("--model", "mlp:64")
            .set("--epochs", "40")
            .set("--lr", "0.05")
            .with(&["--sam", "0.05", "--drw", "--save-every", "0"])
    }

    /// The run with `flag` set to `value` instead of its default (or in addition).
    pub fn set(mut self, flag: &'static str, value: &str) -> Self {
        match self.settings.iter_mut().find(|(f, _)| *f == flag) {
            Some(setting) => setting.1 = value.to_string(),
            None => self.settings.push((flag, value.to_string())),
        }
        self
    }

    /// The run with more flags (`--sam 0.05`, `--drw`, ...).
    pub fn with(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// The `train` command line into `out`, quiet.
    pub fn args(&self, out: &Path) -> Vec<String> {
        let mut args = vec!["train".to_string()];
        for (flag, value) in &self.settings {
            args.extend([flag.to_string(), value.clone()]);
        }
        args.extend(self.flags.iter().cloned());
        args.extend(["--quiet".into(), "--out".into(), out.display().to_string()]);
        args
    }

    /// Trains into `out`, asserting success.
    pub fn train(&self, out: &Path) {
        let output = saddlescope()
            .args(self.args(out))
            .output()
            .expect("binary runs");
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

/// Writes a version 1.0 `.npy` file: `descr` (e.g. `<f8`), C or Fortran order, the shape as
/// Python prints it (`(3, 4)`), then `payload` as the raw data (which may disagree with the
/// header, for bad-input tests).
pub fn write_npy(path: &Path, descr: &str, fortran: bool, shape: &str, payload: &[u8]) {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(payload);
    std::fs::write(path, bytes).unwrap();
}

/// Little-endian f64 bytes, an `<f8` payload.
pub fn f64_le(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A run long enough to be killed mid-way: 40 epochs of an MLP on 1,600 samples, SAM and DRW.
pub fn recipe() -> TinyRun {
    TinyRun::default()
        .set(
            "--dataset",
            "synthetic:classes=4,dim=32,n=400,test=20,seed=2",
        )
        .set("--model", "mlp:64")
        .set("--epochs", "40")
        .set("--lr", "0.05")
        .with(&["--sam", "0.05", "--drw", "--save-every", "0"])
}

/// Starts the binary with `args`, its output discarded.
pub fn spawn(args: &[String]) -> Child {
    saddlescope_std()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `ready` holds, then SIGKILLs the child; returns false if it exited first.
pub fn kill_when(child: &mut Child, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out");
}
