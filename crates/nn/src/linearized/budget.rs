//! How much memory the linearized HVPs may keep.

/// The share of available memory the linearizations of one operator may keep by default.
pub const DEFAULT_BUDGET_SHARE: f64 = 0.5;

/// Assumed available memory where `/proc/meminfo` cannot be read (not Linux): 4 GiB.
const FALLBACK_AVAILABLE: usize = 4 << 30;

/// The default memory budget of an operator's linearizations: [`DEFAULT_BUDGET_SHARE`] of
/// the memory available now: `MemAvailable` of `/proc/meminfo`, or less where this
/// process's cgroup (a Slurm job's `--mem`, a container's limit) leaves less, since going
/// past a cgroup's limit gets the job killed, not swapped; 4 GiB assumed where neither can
/// be read. Half leaves room for the Lanczos basis, the tangent passes and other processes.
pub fn default_memory_budget() -> usize {
    (available_memory().unwrap_or(FALLBACK_AVAILABLE) as f64 * DEFAULT_BUDGET_SHARE) as usize
}

/// The memory available to this process in bytes: the least of `MemAvailable` and what
/// every cgroup from this process's up to the root leaves under its limit.
fn available_memory() -> Option<usize> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_available(&m));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_headroom(&c, |file| std::fs::read_to_string(file).ok()));
    [system, cgroup].into_iter().flatten().min()
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo`.
fn mem_available(meminfo: &str) -> Option<usize> {
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

/// Where a cgroup hierarchy keeps its memory limit and usage.
struct Hierarchy {
    root: &'static str,
    limit: &'static str,
    usage: &'static str,
}

/// cgroup v2 (`0::PATH` in `/proc/self/cgroup`).
const V2: Hierarchy = Hierarchy {
    root: "/sys/fs/cgroup",
    limit: "memory.max",
    usage: "memory.current",
};

/// cgroup v1's memory controller (`N:…memory…:PATH`).
const V1: Hierarchy = Hierarchy {
    root: "/sys/fs/cgroup/memory",
    limit: "memory.limit_in_bytes",
    usage: "memory.usage_in_bytes",
};

/// The least limit-minus-usage over this process's cgroups (`/proc/self/cgroup`, v2 and
/// v1's memory controller) and their ancestors up to the hierarchy's root, reading files
/// with `read`; `None` where no cgroup on the way has a numeric limit (v2 writes `max`).
fn cgroup_headroom(proc_cgroup: &str, read: impl Fn(&str) -> Option<String>) -> Option<usize> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let hierarchy = match controllers {
                "" => V2,
                list if list.split(',').any(|c| c == "memory") => V1,
                _ => return None,
            };
            hierarchy_headroom(&hierarchy, path.trim(), &read)
        })
        .min()
}

/// The least limit-minus-usage from `root/path` up to `root` in one hierarchy.
fn hierarchy_headroom(
    h: &Hierarchy,
    path: &str,
    read: &impl Fn(&str) -> Option<String>,
) -> Option<usize> {
    let mut dir = format!("{}{}", h.root, path.trim_end_matches('/'));
    let mut least: Option<usize> = None;
    loop {
        let number = |name: &str| read(&format!("{dir}/{name}"))?.trim().parse::<usize>().ok();
        if let Some(limit) = number(h.limit) {
            let headroom = limit.saturating_sub(number(h.usage).unwrap_or(0));
            least = Some(least.map_or(headroom, |l| l.min(headroom)));
        }
        match dir.rfind('/') {
            Some(cut) if dir.len() > h.root.len() && cut >= h.root.len() => dir.truncate(cut),
            _ => return least,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// A stand-in file system: `(path, contents)`.
    fn files<'a>(entries: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |path| {
            entries
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| c.to_string())
        }
    }

    #[test]
    fn mem_available_reads_kilobytes() {
        let meminfo =
            "MemTotal:       24731432 kB\nMemFree:        1000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2 * MIB));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn the_tightest_cgroup_on_the_way_to_the_root_bounds_the_headroom() {
        // A Slurm step under a job with --mem=4G, 1 GiB of it in use; the step itself has
        // no limit and the root none either.
        let fs = files(&[
            ("/sys/fs/cgroup/slurm/job_7/step_0/memory.max", "max\n"),
            ("/sys/fs/cgroup/slurm/job_7/step_0/memory.current", "1000\n"),
            ("/sys/fs/cgroup/slurm/job_7/memory.max", "4294967296\n"),
            ("/sys/fs/cgroup/slurm/job_7/memory.current", "1073741824\n"),
            ("/sys/fs/cgroup/slurm/memory.max", "68719476736\n"),
            ("/sys/fs/cgroup/slurm/memory.current", "2147483648\n"),
        ]);
        let headroom = cgroup_headroom("0::/slurm/job_7/step_0\n", fs);
        assert_eq!(headroom, Some(3 << 30));
    }

    #[test]
    fn no_limit_or_no_cgroup_v2_gives_none() {
        let fs = files(&[("/sys/fs/cgroup/memory.max", "max\n")]);
        assert_eq!(cgroup_headroom("0::/\n", &fs), None);
        assert_eq!(cgroup_headroom("12:cpu:/docker/abc\n", &fs), None);
        // A container whose namespace root is its own cgroup.
        let fs = files(&[
            ("/sys/fs/cgroup/memory.max", "536870912"),
            ("/sys/fs/cgroup/memory.current", "134217728"),
        ]);
        assert_eq!(cgroup_headroom("0::/\n", fs), Some(384 * MIB));
    }

    #[test]
    fn cgroup_v1_memory_controllers_count_too() {
        // A hybrid host: v2 without limits, v1's memory controller with one.
        let fs = files(&[
            (
                "/sys/fs/cgroup/memory/job/memory.limit_in_bytes",
                "2147483648\n",
            ),
            (
                "/sys/fs/cgroup/memory/job/memory.usage_in_bytes",
                "1073741824\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                "5000000000\n",
            ),
        ]);
        let proc_cgroup = "5:devices:/\n4:cpuacct,memory:/job\n0::/\n";
        assert_eq!(cgroup_headroom(proc_cgroup, fs), Some(1 << 30));
    }

    #[test]
    fn usage_above_the_limit_leaves_nothing() {
        let fs = files(&[
            ("/sys/fs/cgroup/a/memory.max", "100"),
            ("/sys/fs/cgroup/a/memory.current", "150"),
        ]);
        assert_eq!(cgroup_headroom("0::/a\n", fs), Some(0));
    }
}
