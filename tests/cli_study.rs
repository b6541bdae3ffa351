//! `saddlescope study` end to end on tiny synthetic recipes: a study killed mid-cell
//! resumes without redoing its finished cells; shards run by the generated Slurm scripts
//! merge into the unsharded study byte for byte; bad flags fail with one line.

use std::path::Path;
use std::process::Stdio;

use crate::util::*;

/// The train flags of a tiny recipe (TinyRun's data, model and optimiser).
const TINY: &str = "--dataset synthetic:classes=3,dim=6,n=40,test=10,seed=1 --ratio 10 --model mlp:8 --batch-size 16 --lr 0.1";

/// A study of two tiny arms (without and with SAM) over `seeds`.
fn tiny_study(seeds: &str) -> Vec<String> {
    [
        "--seeds".to_string(),
        seeds.to_string(),
        "--epochs".into(),
        "4".into(),
        "--arm".into(),
        format!("ce-drw=mnist-lt-ce-drw {TINY}"),
        "--arm".into(),
        format!("sam=mnist-lt-ce-drw-sam {TINY} --sam 0.05"),
        "--analyze-args".into(),
        "--lanczos-steps 20 --probes 2".into(),
    ]
    .to_vec()
}

fn study(out: &Path, args: &[String]) -> std::process::Output {
    saddlescope()
        .arg("study")
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .modified()
        .unwrap()
}

#[test]
fn a_study_killed_mid_cell_resumes_without_redoing_finished_cells() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    // One arm long enough to be killed mid-run (TinyRun::long's recipe), two seeds.
    let long = "--dataset synthetic:classes=4,dim=32,n=400,test=20,seed=2 --ratio 10 --model mlp:64 --batch-size 16 --lr 0.05 --save-every 0";
    let args: Vec<String> = [
        "--seeds",
        "0-1",
        "--epochs",
        "40",
        "--arm",
        &format!("long=mnist-lt-ce-drw {long}"),
        "--analyze-args",
        "--lanczos-steps 10 --probes 2 --no-all",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    let first = out.join("cells/long/seed-0");
    let second = out.join("cells/long/seed-1");
    let mut child = saddlescope_std()
        .arg("study")
        .args(&args)
        .args(["--out", out.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        kill_when(&mut child, || log_lines(&second.join("run")) >= 2),
        "the study finished before it could be killed"
    );
    assert!(
        first.join("cell.json").exists(),
        "the first cell is finished"
    );
    assert!(
        !second.join("cell.json").exists(),
        "killed in the second cell"
    );
    assert!(!out.join("study.json").exists());
    let kept = [
        first.join("cell.json"),
        first.join("run/log.jsonl"),
        first.join("run/last.safetensors"),
        first.join("analysis/spectrum.json"),
    ];
    let before: Vec<_> = kept.iter().map(|p| modified(p)).collect();
    let args: Vec<String> = args.into_iter().filter(|a| a != "--quiet").collect();
    let o = study(&out, &args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("cell 1 of 2 (long/seed-0): finished before, reused"),
        "{err}"
    );
    assert!(err.contains("resuming the run in"), "{err}");
    let after: Vec<_> = kept.iter().map(|p| modified(p)).collect();
    assert_eq!(before, after, "the finished cell was not touched");
    assert_eq!(log_lines(&second.join("run")), 40);
    let json = read_json(&out.join("study.json"));
    assert_eq!(json["cells"].as_array().unwrap().len(), 2);
    // One arm: claim (a) only, and the report says (b) is not tested.
    assert_eq!(json["claims"].as_array().unwrap().len(), 1);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("**Claim (b)**") && md.contains("is not tested"),
        "{md}"
    );
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn slurm_study_shards_merge_into_the_unsharded_study_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let args = tiny_study("0-1");
    let o = study(
        &work.join("whole"),
        &[args.clone(), vec!["--quiet".into()]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = saddlescope_std()
        .current_dir(work)
        .args(["slurm", "study", "--shards", "3", "--out", "st", "--"])
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "st/slurm/study.sbatch\nst/slurm/merge.sbatch\nst/slurm/submit.sh\n"
    );
    for i in 1..=3 {
        let o = std::process::Command::new("bash")
            .arg("st/slurm/study.sbatch")
            .current_dir(work)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "shard {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Four cells over three shards: 2, 1, 1.
    let cells = |i: usize| {
        read_json(&work.join(format!("st/shards/shard-{i}-of-3/study-shard.json")))["cells"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!([cells(1), cells(2), cells(3)], [2, 1, 1]);
    // A missing shard is named.
    let o = run(&[
        "merge",
        work.join("st/shards/shard-1-of-3").to_str().unwrap(),
        work.join("st/shards/shard-3-of-3").to_str().unwrap(),
        "--out",
        work.join("partial").to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 2, "missing shard 2/3");
    let o = std::process::Command::new("bash")
        .arg("st/slurm/merge.sbatch")
        .current_dir(work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for file in ["study.json", "study.csv", "cells.csv"] {
        assert!(
            read(&work.join("whole").join(file)) == read(&work.join("st").join(file)),
            "{file} differs between the sharded and the unsharded study"
        );
    }
    let md = std::fs::read_to_string(work.join("st/report.md")).unwrap();
    assert!(
        md.contains("## Conclusions") && md.contains("**Claim (a)**"),
        "{md}"
    );
    assert!(work.join("st/figures/study_lambda_min.png").exists());
}

#[test]
fn bad_study_flags_exit_2_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let o_str = out.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["--seeds", "3-1"], "--seeds"),
        (&["--arm", "mnist-lt-ce"], "--arm"),
        (&["--arm", "x=nope"], "--arm x:"),
        (
            &["--arm", "x=mnist-lt-ce --seed 1"],
            "--seed among its train flags",
        ),
        (&["--arm", "x=mnist-lt-ce --lr -1"], "--arm x:"),
        (
            &["--analyze-args", "--seed 2"],
            "--analyze-args: --seed does not belong there",
        ),
        (&["--analyze-args", "--probes 0"], "--analyze-args"),
        (&["--shard", "0/2"], "--shard"),
    ];
    for (flags, needle) in cases {
        let o = saddlescope()
            .arg("study")
            .args(flags)
            .args(["--out", o_str])
            .output()
            .unwrap();
        assert_one_line_error(&o, 2, needle);
    }
    assert!(!out.exists(), "nothing written");
    let o = run(&[
        "slurm", "study", "--shards", "2", "--out", o_str, "--", "--out", "x",
    ]);
    assert_one_line_error(&o, 2, "--out among the study arguments");
}
