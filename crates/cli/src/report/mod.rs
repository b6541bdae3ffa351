//! The Markdown + HTML report of runs and analyses (`saddlescope report`, `compare`, `demo`).

mod build;
mod doc;
mod figures;
mod inputs;
mod text;

pub use build::{write_report, ReportOptions};
pub use inputs::load_inputs;

/// The command line of this process, for a report's reproducibility section.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
