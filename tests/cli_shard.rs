//! Sharded analyses (`analyze --shard I/N`) run as parallel processes and merged
//! (`merge`): byte-identical to one unsharded run, also after a shard is killed and rerun
//! alone with `--resume`; the Slurm scripts of `slurm analyze` run as plain bash and chain
//! the merge after the array; bad shards, merges and script requests are named.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::*;

/// The analyze command line of these tests (without `--out`).
fn analyze_args(ckpt: &Path) -> Vec<String> {
    [
        "analyze",
        &ckpt.display().to_string(),
        "--lanczos-steps",
        "80",
        "--probes",
        "3",
    ]
    .map(String::from)
    .to_vec()
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of the unsharded analysis in `whole` (spectrum.json, summary.csv,
/// classes/*.json) is in `merged` with the same bytes.
fn assert_same_analysis(whole: &Path, merged: &Path) {
    let mut names = vec![PathBuf::from("spectrum.json"), "summary.csv".into()];
    for entry in std::fs::read_dir(whole.join("classes")).unwrap() {
        names.push(Path::new("classes").join(entry.unwrap().file_name()));
    }
    assert_eq!(names.len(), 2 + 5, "4 classes and all");
    for name in names {
        assert!(
            read(&whole.join(&name)) == read(&merged.join(&name)),
            "{} differs from the unsharded run",
            name.display()
        );
    }
}

/// A 4-class run: its checkpoint and the unsharded analysis of it in `dir/whole`.
fn checkpoint_and_whole_analysis(dir: &Path) -> (PathBuf, PathBuf) {
    let run_dir = dir.join("run");
    recipe().set("--epochs", "3").train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let whole = dir.join("whole");
    let args = with(analyze_args(&ckpt), &["--quiet", "--out"]);
    let o = saddlescope_std().args(&args).arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (ckpt, whole)
}

/// Three shards in parallel; the one with three classes is killed after its first and
/// rerun alone with --resume, reusing it. The merge refuses the incomplete shard first, then
/// writes the unsharded run's bytes.
#[test]
fn shards_in_parallel_merge_byte_identically_and_a_killed_shard_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, whole) = checkpoint_and_whole_analysis(dir.path());
    let shard_dir = |i: usize| dir.path().join(format!("shard-{i}-of-3"));
    let shard_args = |i: usize, resume: bool| {
        let mut args = with(
            analyze_args(&ckpt),
            &["--shard", &format!("{i}/3"), "--out"],
        );
        args.push(shard_dir(i).display().to_string());
        if resume {
            args.push("--resume".into());
        }
        args
    };
    // Classes of 400, 185, 86 and 40 samples and `all` (711): shard 1 gets all, shard 2
    // class 0, shard 3 classes 1-3.
    let mut children: Vec<_> = (1..=3).map(|i| spawn(&shard_args(i, false))).collect();
    let killed = kill_when(&mut children[2], || {
        shard_dir(3).join("classes/class-0001.json").exists()
    });
    assert!(killed, "shard 3 finished before it could be killed");
    for child in &mut children[..2] {
        assert!(child.wait().unwrap().success());
    }
    let manifest = read_json(&shard_dir(3).join("shard.json"));
    assert_eq!(manifest["shard"], "3/3");
    assert_eq!(manifest["plan"]["hessians"].as_array().unwrap().len(), 5);
    let shards: Vec<String> = (1..=3)
        .map(|i| shard_dir(i).display().to_string())
        .collect();
    let merged = dir.path().join("merged");
    let merge = |out: &Path| {
        let mut args = vec!["merge".to_string()];
        args.extend(shards.iter().cloned());
        args.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
        saddlescope_std().args(&args).output().unwrap()
    };
    let incomplete = merge(&merged);
    assert_one_line_error(&incomplete, 1, "shard 3/3");
    assert!(stderr(&incomplete).contains("is incomplete: no result for class 2, class 3; rerun it with the same command plus --resume"), "{}", stderr(&incomplete));

    let rerun = saddlescope_std()
        .args(shard_args(3, true))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{err}");
    assert!(
        err.contains("note: shard 3/3: class 1, class 2, class 3 (311 of 1422 samples)"),
        "{err}"
    );
    assert_eq!(err.matches("(reused)").count(), 1, "{err}");
    assert!(err.contains("shard 3/3: 3 Hessians in"), "{err}");

    let o = merge(&merged);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_analysis(&whole, &merged);
}

/// The generated scripts, run by bash as Slurm would run them (task I with
/// SLURM_ARRAY_TASK_ID=I), merge into the unsharded bytes; submit.sh queues the merge with
/// --dependency=afterok on the array (a stand-in `sbatch` records what it is asked).
#[test]
fn slurm_scripts_run_as_plain_bash_and_chain_the_merge_after_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, whole) = checkpoint_and_whole_analysis(dir.path());
    let work = dir.path();
    let o = saddlescope_std()
        .current_dir(work)
        .args([
            "slurm",
            "analyze",
            "--shards",
            "7",
            "--out",
            "an",
            "--cpus-per-task",
            "2",
            "--",
        ])
        .args(&analyze_args(&ckpt)[1..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        listed,
        "an/slurm/analyze.sbatch\nan/slurm/merge.sbatch\nan/slurm/submit.sh\n"
    );
    let script = std::fs::read_to_string(work.join("an/slurm/analyze.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=1-7\n") && !script.contains("--gres"),
        "{script}"
    );
    assert!(
        script.contains(&format!("#SBATCH --chdir={}\n", work.display())),
        "{script}"
    );
    assert!(work.join("an/slurm/logs").is_dir());

    // 7 shards of 5 Hessians: shards 6 and 7 are empty and succeed.
    for i in 1..=7 {
        let o = std::process::Command::new("bash")
            .arg("an/slurm/analyze.sbatch")
            .current_dir(work)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "shard {i}: {err}");
        if i > 5 {
            assert!(err.contains("has no Hessians to estimate"), "{err}");
        }
    }
    let o = std::process::Command::new("bash")
        .arg("an/slurm/merge.sbatch")
        .current_dir(work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_analysis(&whole, &work.join("an"));

    let bin = work.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = work.join("sbatch.log");
    // The first call answers job 41, the second 42 on a cluster (--parsable's `id;cluster`).
    let fake = format!(
        "#!/bin/bash\necho \"$*\" >> {log}\nif [ $(wc -l < {log}) = 1 ]; then echo 41; else echo '42;main'; fi\n",
        log = log.display()
    );
    std::fs::write(bin.join("sbatch"), fake).unwrap();
    let status = std::process::Command::new("chmod")
        .args(["+x", &bin.join("sbatch").display().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("bash")
        .arg(work.join("an/slurm/submit.sh"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "analyze: job array 41 (7 shards); merge: job 42, once every shard has succeeded\n"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--parsable an/slurm/analyze.sbatch\n\
         --parsable --dependency=afterok:41 --kill-on-invalid-dep=yes an/slurm/merge.sbatch\n"
    );
}

#[test]
fn bad_shards_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("out").display().to_string();
    for (value, why) in [
        ("0/4", "--shard \"0/4\": shard 0 is outside 1..=4"),
        ("5/4", "--shard \"5/4\": shard 5 is outside 1..=4"),
        ("1/0", "--shard \"1/0\": the shard count must be at least 1"),
        (
            "x",
            "--shard \"x\": expected I/N (run I of N, 1 <= I <= N), e.g. 1/4",
        ),
    ] {
        let output = run(&["analyze", "ckpt.safetensors", "--out", &o, "--shard", value]);
        assert_one_line_error(&output, 2, why);
    }
    assert_one_line_error(
        &run(&["analyze", "c", "--out", &o, "--shard", "1/2", "--landscape"]),
        2,
        "'--shard <I/N>' cannot be used with '--landscape'",
    );
    assert!(!Path::new(&o).exists());
}

/// Shards of two analyses with different seeds are named with the field and both
/// directories; a missing shard with the Hessians it should hold; `--out` may not be a shard.
#[test]
fn merges_of_mismatched_or_missing_shards_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors").display().to_string();
    let shard = |i: usize, seed: &str| {
        let out = dir.path().join(format!("seed{seed}-{i}"));
        let args = [
            "analyze",
            &ckpt,
            "--lanczos-steps",
            "20",
            "--probes",
            "2",
            "--seed",
            seed,
            "--shard",
            &format!("{i}/2"),
            "--quiet",
            "--out",
            &out.display().to_string(),
        ];
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        out.display().to_string()
    };
    let (a1, a2, b2) = (shard(1, "0"), shard(2, "0"), shard(2, "1"));
    let merged = dir.path().join("merged").display().to_string();
    assert_one_line_error(
        &run(&["merge", &a1, &b2, "--out", &merged]),
        1,
        &format!("shards differ in params.seed: shard 1/2 ({a1}) has 0, shard 2/2 ({b2}) has 1"),
    );
    assert_one_line_error(
        &run(&["merge", &a2, "--out", &merged]),
        1,
        "missing shard 1/2 (all)",
    );
    assert_one_line_error(
        &run(&["merge", &a1, &a2, &a2, "--out", &merged]),
        1,
        &format!("shard 2/2 is given twice: {a2} and {a2}"),
    );
    assert_one_line_error(&run(&["merge", &a1, &a2, "--out", &a1]), 2, "--out");
    assert!(!Path::new(&merged).exists());
    let o = run(&["merge", &a1, &a2, "--out", &merged]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("trace identity"), "{}", stdout(&o));
}

#[test]
fn bad_slurm_requests_exit_2_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("an").display().to_string();
    let slurm = |flags: &[&str], analyze: &[&str]| {
        let mut args = vec!["slurm", "analyze", "--out", &out];
        args.extend(flags);
        args.push("--");
        args.extend(analyze);
        run(&args)
    };
    assert_one_line_error(&slurm(&["--shards", "0"], &["c"]), 2, "--shards 0");
    assert_one_line_error(
        &slurm(&["--shards", "2", "--cpus-per-task", "0"], &["c"]),
        2,
        "--cpus-per-task 0",
    );
    for taken in ["--out", "--shard=1/2", "--resume", "--landscape"] {
        let flag = taken.split('=').next().unwrap();
        assert_one_line_error(
            &slurm(&["--shards", "2"], &["c", taken, "x"]),
            2,
            &format!("{flag} among the analyze arguments"),
        );
    }
    assert_one_line_error(
        &slurm(&["--shards", "2"], &["c", "--probes", "0"]),
        2,
        "--probes 0: expected at least 1",
    );
    assert_one_line_error(
        &slurm(&["--shards", "2"], &["c", "--bogus"]),
        2,
        "analyze arguments: unexpected argument '--bogus'",
    );
    assert_one_line_error(
        &slurm(&["--shards", "2"], &["c", "--dtype", "f16"]),
        2,
        "analyze arguments: --dtype \"f16\": expected f32 or f64",
    );
    assert!(!Path::new(&out).exists());
}
