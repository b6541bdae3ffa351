//! End-to-end tests of the `saddlescope` binary: real commands on small seeded inputs.

mod util;

mod cli_bad_inputs;
mod cli_bench;
mod cli_data;
mod cli_demo;
mod cli_interrupt;
mod cli_landscape;
mod cli_new_user;
mod cli_out_dir;
mod cli_shard;
mod cli_spectrum;
mod cli_study;
mod cli_train_analyze;
mod cli_verdicts;
mod error_chains;
