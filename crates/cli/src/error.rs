//! How failures reach the user: one line `error: ...` on stderr, exit status 2 for usage
//! errors (a bad flag value or combination) and 1 for everything else.
//!
//! Libraries decide which of their errors are usage errors (`is_usage()` on each library
//! error, [`LibraryError`]) and name their parameters in their own words; [`crate::flags`]
//! renders such an error with the flag names, and [`ResultExt::cli`] turns it into a
//! [`UsageError`]. clap's own parse errors become one line too ([`clap_line`]).

use std::fmt;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A bad flag or flag combination, reported as one line naming the flag (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds an `anyhow::Error` that exits with status 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The exit status of a failed command: 2 for a [`UsageError`], 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}

/// An error of a library crate that can be about a parameter the user set.
pub trait LibraryError: std::error::Error + Send + Sync + 'static {
    /// Whether the library calls it a usage error (a bad parameter, not a failure).
    fn is_usage(&self) -> bool;
}

/// Each library error answers with its own `is_usage()`.
macro_rules! library_errors {
    ($($error:ty),*) => {
        $(impl LibraryError for $error {
            fn is_usage(&self) -> bool {
                <$error>::is_usage(self)
            }
        })*
    };
}

library_errors!(
    saddlescope_data::Error,
    saddlescope_train::Error,
    saddlescope_analysis::Error,
    saddlescope_spectral::Error
);

/// `.cli()` on a library result: its usage errors become [`UsageError`]s that name the
/// flag; the rest pass as they are (exit status 1).
pub trait ResultExt<T> {
    /// The result with its error as the command line reports it.
    fn cli(self) -> anyhow::Result<T>;
}

impl<T, E: LibraryError> ResultExt<T> for Result<T, E> {
    fn cli(self) -> anyhow::Result<T> {
        self.map_err(cli_error)
    }
}

/// A library error as the command line reports it: a usage error naming the flag, or the
/// error as it is (exit status 1).
pub fn cli_error(err: impl LibraryError) -> anyhow::Error {
    if err.is_usage() {
        if let Some(message) = crate::flags::with_flags(&err) {
            return usage(message);
        }
    }
    anyhow::Error::new(err)
}

/// One line for a clap usage error of the command line `argv`, without the `error: `
/// prefix: `--split "val": expected train or test` for a value outside a closed set,
/// `--model "x": <why>` for one its parser rejects (or the library's own message when it
/// already names the flag), the flags actually given for a conflict with a group (clap lists
/// the whole group), and clap's text without its usage block and with its tips on the same
/// line for everything else.
pub fn clap_line(err: &clap::Error, argv: &[String]) -> String {
    match err.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            value_line(err).unwrap_or_else(|| clap_text(err))
        }
        ErrorKind::ArgumentConflict => conflict_line(err, argv).unwrap_or_else(|| clap_text(err)),
        _ => clap_text(err),
    }
}

/// `the argument 'A' cannot be used with 'B'`, B the first conflicting flag in `argv`.
fn conflict_line(err: &clap::Error, argv: &[String]) -> Option<String> {
    let (Some(ContextValue::String(arg)), Some(ContextValue::Strings(others))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::PriorArg),
    ) else {
        return None;
    };
    let given = |other: &&String| {
        let flag = other.split(' ').next().unwrap_or(other);
        argv.iter()
            .any(|word| word == flag || word.starts_with(&format!("{flag}=")))
    };
    let other = others.iter().find(given)?;
    Some(format!(
        "the argument '{arg}' cannot be used with '{other}'"
    ))
}

/// The flag and value of a rejected value, and why.
fn value_line(err: &clap::Error) -> Option<String> {
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    if value.is_empty() {
        return None;
    }
    // "--split <SPLIT>" names the flag "--split"; a positional "<CHECKPOINT>" stays whole.
    let flag = arg.split(' ').next().unwrap_or(arg);
    if err.kind() == ErrorKind::InvalidValue {
        let Some(ContextValue::Strings(valid)) = err.get(ContextKind::ValidValue) else {
            return None;
        };
        return Some(format!("{flag} {value:?}: expected {}", or_list(valid)));
    }
    let source = std::error::Error::source(err)?;
    Some(crate::flags::with_flags(source).unwrap_or_else(|| format!("{flag} {value:?}: {source}")))
}

/// clap's message on one line: the lines before its usage block, a list joined after its
/// colon, tips after a semicolon.
fn clap_text(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let Some((head, rest)) = lines.split_first() else {
        return rendered.trim().to_string();
    };
    let head = head.strip_prefix("error: ").unwrap_or(head);
    if rest.is_empty() {
        head.to_string()
    } else if head.ends_with(':') {
        format!("{head} {}", rest.join(", "))
    } else {
        format!("{head}; {}", rest.join("; "))
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    /// The one-line message of a command line clap rejects.
    fn parse_error(args: &[&str]) -> String {
        let argv: Vec<String> = std::iter::once("saddlescope")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let err = Cli::try_parse_from(&argv).expect_err("a usage error");
        assert!(err.use_stderr(), "{err}");
        clap_line(&err, &argv)
    }

    #[test]
    fn clap_errors_fit_one_line_naming_the_flag() {
        assert_eq!(
            parse_error(&["plot", "dir", "--format", "jpg"]),
            "--format \"jpg\": expected png or svg"
        );
        assert_eq!(
            parse_error(&["spectrum", "--matrix", "m.npy", "--out", "o", "--basis", "f16"]),
            "--basis \"f16\": expected f64 or f32"
        );
        assert_eq!(
            parse_error(&["bench", "--model", "vgg"]),
            "--model \"vgg\": expected mlp, cnn or resnet32"
        );
        let model = parse_error(&["train", "--out", "o", "--model", "transformer"]);
        assert!(
            model.starts_with("--model \"transformer\": bad model spec \"transformer\""),
            "{model}"
        );
        // --resume conflicts with the whole recipe group; the message names the flag given.
        let conflict = parse_error(&["train", "--resume", "run", "--lr", "0.1"]);
        assert_eq!(
            conflict,
            "the argument '--resume <RUN_DIR>' cannot be used with '--lr <LR>'"
        );
        assert_eq!(
            parse_error(&["train", "--drw", "--resume", "run"]),
            "the argument '--drw' cannot be used with '--resume <RUN_DIR>'"
        );
        let missing = parse_error(&["analyze"]);
        assert!(
            missing.starts_with("the following required arguments were not provided: --out"),
            "{missing}"
        );
        let unknown = parse_error(&["train", "--bogus"]);
        assert!(
            unknown.starts_with("unexpected argument '--bogus' found; tip:"),
            "{unknown}"
        );
        for line in [model, conflict, missing, unknown] {
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for args in [["saddlescope", "--help"], ["saddlescope", "--version"]] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert!(!err.use_stderr());
        }
    }

    #[test]
    fn lists_read_as_prose() {
        let list =
            |items: &[&str]| or_list(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b"]), "a or b");
        assert_eq!(list(&["a", "b", "c"]), "a, b or c");
    }
}
