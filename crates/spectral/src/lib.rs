//! Matrix-free spectral estimators (Lanczos, SLQ density, extreme eigenvalues, trace) over any symmetric linear operator, with no deep-learning dependency
#![deny(missing_docs)]
