//! Helpers of the end-to-end tests: run the built `saddlescope` binary, check exit codes
//! and the one-line error contract.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

/// The `saddlescope` binary built by cargo for these tests.
pub fn saddlescope() -> Command {
    let mut cmd = Command::cargo_bin("saddlescope").expect("binary built");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
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
