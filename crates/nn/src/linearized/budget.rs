//! How much memory the linearized HVPs may keep.

/// The share of available memory the linearizations of one operator may keep by default.
pub const DEFAULT_BUDGET_SHARE: f64 = 0.5;

/// Assumed available memory where `/proc/meminfo` cannot be read (not Linux): 4 GiB.
const FALLBACK_AVAILABLE: usize = 4 << 30;

/// The default memory budget of an operator's linearizations: [`DEFAULT_BUDGET_SHARE`] of
/// the memory available now (`MemAvailable` of `/proc/meminfo`, 4 GiB assumed where it
/// cannot be read). Half leaves room for the Lanczos basis, the tangent passes and other
/// processes.
pub fn default_memory_budget() -> usize {
    (available_memory().unwrap_or(FALLBACK_AVAILABLE) as f64 * DEFAULT_BUDGET_SHARE) as usize
}

/// `MemAvailable` in bytes, Linux only.
fn available_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
