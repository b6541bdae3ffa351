//! End-to-end tests of the `saddlescope` binary.
