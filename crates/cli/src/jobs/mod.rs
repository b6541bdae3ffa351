//! What the commands run once their flags are validated: typed jobs in, files and a status
//! out. The commands (`cmd_*.rs`) only turn flags into these; `demo` builds them directly,
//! so it runs exactly what a user gets by hand without re-parsing command lines.

pub mod analyze;
pub mod landscape;
pub mod study;
pub mod train;
