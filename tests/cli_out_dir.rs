//! Output directories (issue 16, items 1-3): one writer at a time, with real concurrent
//! processes; a stale lock taken over, another host's only with --force; nothing replaced by
//! something different without --force; the same settings resume; a resumed run keeps its
//! plan (the quick and the full demo never sharing runs is checked in `cli_demo`).

use std::path::Path;
use std::process::{Child, Stdio};

use crate::util::*;

const LOCK: &str = ".saddlescope.lock";

fn spawn_quiet(args: &[String]) -> Child {
    saddlescope_std()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The epochs `DIR/log.jsonl` holds, in order.
fn logged_epochs(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// This machine's name, as the lock file records it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap()
        .trim()
        .to_string()
}

/// Issue 16, item 1: two `train --out runs/race` at once both exited 0 and interleaved
/// their epochs in one log.
#[test]
fn a_second_train_into_the_same_directory_fails_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let race = dir.path().join("race");
    let args = TinyRun::long().args(&race);
    let mut first = spawn_quiet(&args);
    wait_until("the first run to lock", || race.join(LOCK).exists());
    let second = saddlescope_std().args(&args).output().unwrap();
    assert!(
        first.try_wait().unwrap().is_none(),
        "the second writer must fail while the first still runs"
    );
    assert_one_line_error(&second, 1, &format!("is in use by pid {}", first.id()));
    let err = stderr(&second);
    assert!(
        err.contains("train") && err.contains("choose another --out"),
        "{err}"
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(logged_epochs(&race), (1..=40).collect::<Vec<_>>());
    assert!(!race.join(LOCK).exists(), "released on exit");
}

/// Item 1 for `analyze`: the last to finish won, silently.
#[test]
fn a_second_analyze_into_the_same_directory_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::long().set("--epochs", "2").train(&run_dir);
    let out = dir.path().join("an");
    let args: Vec<String> = [
        "analyze",
        run_dir.join("last.safetensors").to_str().unwrap(),
        "--lanczos-steps",
        "80",
        "--probes",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut first = spawn_quiet(&args);
    wait_until("the first analysis to lock", || out.join(LOCK).exists());
    let second = saddlescope_std().args(&args).output().unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    assert!(first.wait().unwrap().success());
    assert!(
        still_running,
        "the analysis ended before the second writer was refused"
    );
    assert_one_line_error(&second, 1, &format!("is in use by pid {}", first.id()));
    assert!(out.join("spectrum.json").exists() && !out.join(LOCK).exists());
}

/// A lock left by a killed process (a pid that no longer runs) is taken over with a note;
/// a lock written on another host is refused unless --force.
#[test]
fn stale_locks_are_taken_over_and_another_hosts_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut gone = saddlescope_std().arg("--version").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let lock = |pid: u32, host: &str| {
        format!(
            r#"{{"pid":{pid},"host":"{host}","since":1700000000,"command":"saddlescope train --out run"}}"#
        )
    };
    std::fs::write(run_dir.join(LOCK), lock(dead, &host())).unwrap();
    let mut args = TinyRun::default().args(&run_dir);
    args.retain(|a| a != "--quiet");
    let o = saddlescope_std().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "took over the lock left by pid {dead} on this host"
        )),
        "{}",
        stderr(&o)
    );
    assert!(!run_dir.join(LOCK).exists());

    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(LOCK), lock(4242, "a-node-elsewhere")).unwrap();
    let args = TinyRun::default().args(&other);
    let o = saddlescope_std().args(&args).output().unwrap();
    assert_one_line_error(&o, 1, "pid 4242 on host a-node-elsewhere");
    assert!(stderr(&o).contains("add --force to take the lock over"));
    assert!(!other.join("log.jsonl").exists(), "nothing written");
    let o = saddlescope_std()
        .args(&args)
        .arg("--force")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(log_lines(&other), 4);
}

/// Item 2: a class-9-only analysis silently replaced a complete one; train refused an
/// existing --out, analyze did not.
#[test]
fn an_analysis_of_other_settings_needs_force_and_the_same_settings_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let out = dir.path().join("an");
    let analyze = |extra: &[&str]| {
        let mut args = vec![
            "analyze",
            ckpt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--lanczos-steps",
            "20",
            "--probes",
            "2",
        ];
        args.extend(extra);
        run(&args)
    };
    let o = analyze(&["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let full = std::fs::read(out.join("spectrum.json")).unwrap();

    let o = analyze(&["--class-ids", "2", "--no-all"]);
    assert_one_line_error(&o, 2, "holds an analysis made with other settings");
    let err = stderr(&o);
    assert!(
        err.contains("class_ids: [0,1,2] there, [2] asked") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("spectrum.json")).unwrap(),
        full,
        "untouched"
    );

    // The same settings again: every Hessian is reused (`--resume` is accepted, a no-op).
    let o = analyze(&["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("(reused)").count(), 4, "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("spectrum.json")).unwrap(), full);

    let o = analyze(&["--class-ids", "2", "--no-all", "--force", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = read_json(&out.join("spectrum.json"));
    assert_eq!(json["classes"].as_array().unwrap().len(), 1);
    assert!(json["all"].is_null());
    let parts: Vec<_> = std::fs::read_dir(out.join("classes")).unwrap().collect();
    assert_eq!(parts.len(), 1, "--force removed the old per-class results");

    // Files saddlescope did not record are never replaced without --force either.
    let foreign = dir.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("summary.csv"), "my own table\n").unwrap();
    let o = run(&[
        "analyze",
        ckpt.to_str().unwrap(),
        "--out",
        foreign.to_str().unwrap(),
    ]);
    assert_one_line_error(
        &o,
        2,
        "holds files saddlescope did not record (summary.csv)",
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("summary.csv")).unwrap(),
        "my own table\n"
    );
}

/// Item 2 for train: the same flags continue the run, other ones are refused (with
/// --resume named), --force starts over.
#[test]
fn train_into_an_existing_run_resumes_or_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().set("--epochs", "2").train(&run_dir);
    let mut args = TinyRun::default().set("--epochs", "2").args(&run_dir);
    args.retain(|a| a != "--quiet");
    let o = saddlescope_std().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
    assert_eq!(log_lines(&run_dir), 2);

    let o = saddlescope_std()
        .args(TinyRun::default().set("--lr", "0.05").args(&run_dir))
        .output()
        .unwrap();
    assert_one_line_error(&o, 2, "holds a run made with other settings");
    let err = stderr(&o);
    assert!(
        err.contains("epochs: 2 there, 4 asked")
            && err.contains("lr: 0.1 there, 0.05 asked")
            && err.contains(&format!("saddlescope train --resume {}", run_dir.display())),
        "{err}"
    );
    let o = saddlescope_std()
        .args(TinyRun::default().set("--lr", "0.05").args(&run_dir))
        .arg("--force")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(logged_epochs(&run_dir), [1, 2, 3, 4]);
    let record = read_json(&run_dir.join(".saddlescope.json"));
    assert_eq!(record["train"]["settings"]["lr"], 0.05);
}

/// Item 3: `--resume RUN --epochs N` recomputed the schedule (the LR climbed back up); now
/// the recorded plan goes on, and what cannot go on is refused with the reason.
#[test]
fn resume_with_more_epochs_keeps_the_schedule_and_the_drw_start() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let base = TinyRun::default().set("--epochs", "10").with(&["--drw"]);
    base.train(&run_dir);
    let rd = run_dir.to_str().unwrap();
    let o = run(&["train", "--resume", rd, "--epochs", "14", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(log.len(), 14);
    let lr = |e: usize| log[e - 1]["lr"].as_f64().unwrap();
    // The 10-epoch step plan: lr 0.1, x0.01 after epoch 8, x1e-4 after epoch 9; then its
    // final rate. A recomputed 14-epoch plan would be back at 0.1 in epoch 11.
    assert!((lr(10) - 1e-5).abs() < 1e-18, "{}", lr(10));
    for e in 11..=14 {
        assert_eq!(lr(e), lr(10), "epoch {e}");
    }
    // DRW from epoch 9 of 10, as planned (a recomputed plan would start it at 12).
    let drw: Vec<bool> = log.iter().map(|r| r["drw"].as_bool().unwrap()).collect();
    assert_eq!(drw.iter().position(|&d| d), Some(8));
    let record = read_json(&run_dir.join(".saddlescope.json"));
    assert_eq!(record["train"]["settings"]["schedule_epochs"], 10);

    // The report says what happened to the plan.
    let report = dir.path().join("report");
    let o = run(&["report", rd, "--out", report.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("14 epochs (planned: 10)")
            && md.contains("step schedule over 10 epochs, then its final rate for 4 more"),
        "{md}"
    );

    // A cosine schedule ends at 0: it cannot be extended; shortening below done is refused.
    let cosine = dir.path().join("cosine");
    TinyRun::default()
        .set("--epochs", "10")
        .with(&["--drw", "--schedule", "cosine"])
        .train(&cosine);
    let o = run(&[
        "train",
        "--resume",
        cosine.to_str().unwrap(),
        "--epochs",
        "12",
    ]);
    assert_one_line_error(&o, 2, "--epochs: 12: this run's cosine schedule anneals");
    let o = run(&["train", "--resume", rd, "--epochs", "3"]);
    assert_one_line_error(&o, 2, "--epochs: 3: fewer than the 14 epochs already done");
}
