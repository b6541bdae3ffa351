//! Usage errors: a flag value that parsed but makes no sense (ratio below 1, an unknown
//! data-set spec). They exit with status 2, like clap's own parse errors; every other
//! failure exits with 1.

use std::fmt;

/// A bad flag or flag combination, reported as one line naming the flag.
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
