//! Figures (eigen-densities, head/tail overlays, eigenvalue bars, training curves) drawn with plotters from result structs
#![deny(missing_docs)]
