//! The Markdown + HTML report of runs and analyses (`saddlescope report`, `compare`), and
//! of a study (`study`, `demo`).

mod build;
mod doc;
mod figures;
mod inputs;
mod study;
mod text;

pub use build::{write_report, write_study_report, ReportOptions};
pub use inputs::{load_inputs, Inputs};

/// The command line of this process, for a report's reproducibility section.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
