//! `--basis f64|f32`: how the Lanczos basis vectors are stored, for every command that runs
//! Lanczos (`spectrum`, `analyze`, `landscape`, `bench slq`). The flag is text checked here,
//! so a bad value is the one-line usage error naming `--basis` that every flag gives.

use clap::Args;
use saddlescope_spectral::BasisPrecision;

use crate::usage::usage;

/// The `--basis` flag, flattened into each command's flags.
#[derive(Debug, Args)]
pub struct BasisArg {
    /// Storage of the Lanczos basis vectors: f64, or f32 for half the memory (m*n*4 instead
    /// of m*n*8 bytes per running probe) and half the reorthogonalization's memory traffic.
    /// f32 limits orthogonality, and with it the accuracy of Ritz values, to ~1e-7 relative:
    /// fine for densities; use f64 for certified extreme eigenvalues
    #[arg(long, value_name = "f64|f32", default_value = "f64")]
    pub basis: String,
}

impl BasisArg {
    /// The precision named by the flag.
    ///
    /// # Errors
    /// A usage error naming `--basis` for anything but `f64` or `f32`.
    pub fn precision(&self) -> anyhow::Result<BasisPrecision> {
        match self.basis.as_str() {
            "f64" => Ok(BasisPrecision::F64),
            "f32" => Ok(BasisPrecision::F32),
            other => Err(usage(format!("--basis {other:?}: expected f64 or f32"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::UsageError;

    #[test]
    fn parses_both_precisions_and_names_the_flag_otherwise() {
        let arg = |s: &str| BasisArg { basis: s.into() };
        assert_eq!(arg("f64").precision().unwrap(), BasisPrecision::F64);
        assert_eq!(arg("f32").precision().unwrap(), BasisPrecision::F32);
        let err = arg("f16").precision().unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        assert_eq!(err.to_string(), "--basis \"f16\": expected f64 or f32");
    }
}
