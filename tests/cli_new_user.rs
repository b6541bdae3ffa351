//! What a new user tripped on (issue 16, items 4-8): derived defaults that failed on flags
//! never passed, a divergence that promised checkpoints it did not keep, foreign checkpoints
//! analyzed on a silently rebuilt subset, outputs and messages that read like bugs.

use std::path::Path;

use candle_core::Device;
use saddlescope_train::{read_safetensors, write_safetensors};

use crate::util::*;

/// Item 4: `--epochs 2` on a DRW preset failed on a `--drw-epoch` never passed, and
/// `--drw-epoch` was refused for lack of `--drw` although the preset turns DRW on.
#[test]
fn drw_presets_work_with_any_number_of_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    let o = run(&[
        "train",
        "--preset",
        "mnist-lt-ce-drw",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        short.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let record = read_json(&short.join(".saddlescope.json"));
    assert_eq!(
        record["train"]["settings"]["reweighting"]["from_epoch"], 2,
        "DRW in the last epoch"
    );
    let moved = dir.path().join("moved");
    let o = run(&[
        "train",
        "--preset",
        "mnist-lt-ce-drw",
        "--epochs",
        "2",
        "--drw-epoch",
        "1",
        "--quiet",
        "--out",
        moved.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(moved.join("log.jsonl")).unwrap();
    assert!(log.lines().all(|l| l.contains("\"drw\":true")), "{log}");
    // One epoch of the CIFAR LDAM-DRW recipe (on small synthetic data and an MLP).
    let one = dir.path().join("one");
    let o = run(&[
        "train",
        "--preset",
        "cifar10-lt-ldam-drw",
        "--epochs",
        "1",
        "--dataset",
        "synthetic:classes=10,dim=8,n=100,test=5,seed=1",
        "--ratio",
        "10",
        "--model",
        "mlp:8",
        "--quiet",
        "--out",
        one.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Without DRW, --drw-epoch names what is missing; with --reweight, the conflict.
    let never = dir.path().join("never");
    let never = never.to_str().unwrap();
    let o = run(&["train", "--drw-epoch", "2", "--out", never]);
    assert_one_line_error(
        &o,
        2,
        "--drw-epoch needs DRW: add --drw (preset mnist-lt-ce",
    );
    let o = run(&["train", "--reweight", "--drw-epoch", "2", "--out", never]);
    assert_one_line_error(&o, 2, "--drw-epoch: --reweight uses the class weights");
    assert!(!Path::new(never).exists());
}

/// Item 4: an error about a derived value (n_max, from the data) says where it came from
/// and which flag sets it.
#[test]
fn a_derived_n_max_is_named_as_derived() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "train",
        "--dataset",
        "synthetic:classes=10,dim=4,n=50,test=5",
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_one_line_error(
        &o,
        2,
        "--ratio 100 leaves class 8 with 0 train samples: the head class gets 50, by default the smallest class of the train split (set it with --n-max)",
    );
}

/// Item 5: a run that diverged in its first epoch promised "the checkpoints of the last
/// completed epoch" and left an empty run directory.
#[test]
fn divergence_before_any_epoch_keeps_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diverged");
    let o = saddlescope_std()
        .args(TinyRun::default().set("--lr", "1e20").args(&out))
        .output()
        .unwrap();
    assert_one_line_error(&o, 1, "no epoch was complete, so there is nothing to keep");
    assert!(!out.exists(), "no empty run directory left behind");
}

/// A foreign copy of a tiny run's checkpoint: the same tensors without saddlescope
/// metadata.
fn foreign_checkpoint(dir: &Path) -> std::path::PathBuf {
    let run_dir = dir.join("run");
    TinyRun::default().train(&run_dir);
    let file = read_safetensors(&run_dir.join("last.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: Vec<_> = file.tensors.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let path = dir.join("foreign.safetensors");
    write_safetensors(&path, &tensors, Default::default()).unwrap();
    path
}

/// Item 6: a foreign checkpoint was analyzed on saddlescope's own rebuilt subset without a
/// word; with `--split test` and a small train set, a train profile of flags never passed
/// failed.
#[test]
fn foreign_checkpoints_choose_their_split_and_say_what_train_means() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = foreign_checkpoint(dir.path());
    let f = foreign.to_str().unwrap();
    let analyze = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "analyze",
            f,
            "--arch",
            "mlp:8",
            "--lanczos-steps",
            "20",
            "--probes",
            "2",
            "--out",
        ];
        let out = dir.path().join(out);
        let out = out.to_str().unwrap().to_string();
        args.push(&out);
        args.extend(extra);
        run(&args)
    };
    // 3 classes of 40 train samples: the default profile (exp, ratio 100) leaves class 2
    // with 0 samples.
    let data = ["--dataset", "synthetic:classes=3,dim=6,n=40,test=10,seed=1"];
    let o = analyze("none", &data);
    assert_one_line_error(&o, 2, "--split: ");
    assert!(stderr(&o).contains("choose --split test"), "{}", stderr(&o));

    let o = analyze("test", &[&data[..], &["--split", "test"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--split test without --imbalance or --ratio: no training profile"),
        "{}",
        stderr(&o)
    );
    let json = read_json(&dir.path().join("test/spectrum.json"));
    assert_eq!(json["split"], "test");
    assert_eq!(json["classes"].as_array().unwrap().len(), 3);

    let train = [&data[..], &["--split", "train", "--ratio", "10"]].concat();
    let o = analyze("train", &train);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("records no training subset: the train split here is saddlescope's own seeded long-tailed subset (exp profile, ratio 10, --data-seed 0), not necessarily the images the model saw"),
        "{}",
        stderr(&o)
    );
}

/// Item 7: outputs and messages that read like bugs.
#[test]
fn messages_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let rd = run_dir.to_str().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    // A run directory as the checkpoint: one line, pointing at last.safetensors.
    let o = run(&["analyze", rd, "--out", &out("a")]);
    assert_one_line_error(
        &o,
        2,
        &format!(
            "CHECKPOINT {rd}: is a directory; pass a checkpoint file, e.g. {rd}/last.safetensors"
        ),
    );
    // A preset's data directory that is not there: named with --dataset.
    let o = run(&["train", "--preset", "cifar10-lt-ce", "--out", &out("c")]);
    assert_one_line_error(
        &o,
        1,
        "--dataset cifar10:data/cifar-10-batches-bin: data/cifar-10-batches-bin does not exist; put the data set there or point --dataset at it",
    );
    assert!(!dir.path().join("c").exists());
    // compare takes analyses only, and says so.
    let o = run(&["compare", rd, &out("nope"), "--out", &out("cmp")]);
    assert_one_line_error(
        &o,
        2,
        &format!("A_DIR {rd}: not an analysis (no spectrum.json)"),
    );
    let o = run(&["compare", &out("nope"), rd, "--out", &out("cmp")]);
    assert_one_line_error(&o, 2, "nope: no such directory");

    // --probes 1: a note says why the standard errors are null.
    let o = run(&[
        "analyze",
        &format!("{rd}/last.safetensors"),
        "--probes",
        "1",
        "--lanczos-steps",
        "20",
        "--dtype",
        "f32",
        "--out",
        &out("one-probe"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("note: --probes 1: the trace and negative mass get no standard error"),
        "{}",
        stderr(&o)
    );
    assert!(
        read_json(&dir.path().join("one-probe/spectrum.json"))["classes"][0]["trace_stderr"]
            .is_null()
    );
    // With f32 HVPs the rounding allowance sets the bounds: marked, and explained.
    let table = stdout(&o);
    assert!(table.contains(" r)"), "{table}");
    assert!(
        table.contains("r: the bound is the rounding allowance of the arithmetic"),
        "{table}"
    );
    let e = &read_json(&dir.path().join("one-probe/spectrum.json"))["classes"][0];
    let allowance = e["rounding_allowance"].as_f64().unwrap();
    assert!(allowance > 0.0 && e["lambda_min_bound"].as_f64().unwrap() >= allowance);
    // The progress lines count the Hessians.
    let err = stderr(&o);
    assert!(
        err.contains("Hessian 1 of 4 (class 0)") && err.contains("Hessian 4 of 4 (all classes)"),
        "{err}"
    );

    // landscape has no --top-k: a short Lanczos run fits top-k instead of failing on it.
    let o = run(&[
        "landscape",
        &format!("{rd}/last.safetensors"),
        "--class",
        "0",
        "--lanczos-steps",
        "5",
        "--points",
        "5",
        "--quiet",
        "--out",
        &out("land"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Item 8: the terminal side: `compare --quiet` printed its CSV, `report --labels` dropped
/// extra labels silently, `train --help` did not list the presets.
#[test]
fn quiet_labels_and_help_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let an = dir.path().join("an");
    let o = run(&[
        "analyze",
        ckpt.to_str().unwrap(),
        "--lanczos-steps",
        "20",
        "--probes",
        "2",
        "--quiet",
        "--out",
        an.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).is_empty() && stderr(&o).is_empty(),
        "--quiet analyze"
    );
    let a = an.to_str().unwrap();
    let cmp = dir.path().join("cmp");
    let o = run(&["compare", a, a, "--out", cmp.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).is_empty(),
        "--quiet compare printed {}",
        stdout(&o)
    );
    assert!(stderr(&o).is_empty());
    assert!(cmp.join("deltas.csv").exists());

    let report = dir.path().join("report");
    let r = report.to_str().unwrap();
    let rd = run_dir.to_str().unwrap();
    let o = run(&["report", a, rd, "--labels", "x,y,z", "--out", r]);
    assert_one_line_error(&o, 2, "--labels: 3 labels for 2 inputs");
    let o = run(&["report", a, rd, "--labels", "x,y", "--out", r, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Rust Debug text is gone from the report, numbers never wrap in its tables.
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for debug in [
        "FromEpoch",
        "Exp imbalance",
        "re-weighting: Off",
        "Step schedule",
    ] {
        assert!(!md.contains(debug), "{debug:?} in report.md");
    }
    assert!(
        md.contains("exp imbalance") && md.contains("class re-weighting: off"),
        "{md}"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("td { white-space: nowrap; }"));

    let help = run(&["train", "--help"]);
    assert!(help.status.success());
    for preset in [
        "mnist-lt-ce-drw-sam",
        "cifar100-lt-ldam-drw",
        "cifar10-lt-ce",
    ] {
        assert!(
            stdout(&help).contains(preset),
            "train --help lacks {preset}"
        );
    }
}
