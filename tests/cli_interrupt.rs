//! Runs killed with SIGKILL (during an epoch, or while a checkpoint is being written) and
//! resumed end bit-identical to runs that were never interrupted; the same for `analyze`.
//! A killed run's directory lock is taken over by the next writer; Ctrl-C releases it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn train_killed_mid_epoch_and_mid_write_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, broken) = (dir.path().join("straight"), dir.path().join("broken"));
    let o = saddlescope_std()
        .args(TinyRun::long().args(&straight))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = spawn(&TinyRun::long().args(&broken));
    assert!(
        kill_when(&mut child, || log_lines(&broken) >= 3),
        "the run finished before it could be killed"
    );
    let done = log_lines(&broken);
    assert!(done < 40, "killed mid-run ({done} epochs logged)");
    // A write killed half-way leaves a partial temporary file (`.NAME.tmp.PID.N`, see
    // `saddlescope_results::write_atomically`); resume must not trip on it.
    let state = std::fs::read(broken.join("resume.safetensors")).unwrap();
    std::fs::write(
        broken.join(".resume.safetensors.tmp.1.0"),
        &state[..state.len() / 2],
    )
    .unwrap();
    std::fs::write(broken.join(".last.safetensors.tmp.1.1"), b"partial").unwrap();
    // The killed process could not remove its lock: the next writer takes it over.
    assert!(broken.join(".saddlescope.lock").exists());

    let o = run(&["train", "--resume", broken.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("took over the lock left by pid"),
        "{}",
        stderr(&o)
    );
    assert!(!broken.join(".saddlescope.lock").exists());
    for name in ["last.safetensors", "best.safetensors", "resume.safetensors"] {
        let a = std::fs::read(straight.join(name)).unwrap();
        let b = std::fs::read(broken.join(name)).unwrap();
        assert!(a == b, "{name} differs after kill + resume");
    }
    assert_eq!(log_lines(&broken), 40);
}

#[test]
fn analyze_killed_mid_run_resumes_to_an_identical_report() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::long().set("--epochs", "3").train(&run_dir);
    let ckpt = run_dir.join("last.safetensors").display().to_string();
    // The same command again continues (`--resume` is still accepted, and changes nothing).
    let analyze = |out: &Path, resume: bool| -> Vec<String> {
        let mut a: Vec<String> = [
            "analyze",
            &ckpt,
            "--lanczos-steps",
            "80",
            "--probes",
            "3",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(out.display().to_string());
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let (straight, broken) = (dir.path().join("a"), dir.path().join("b"));
    assert!(saddlescope_std()
        .args(analyze(&straight, false))
        .output()
        .unwrap()
        .status
        .success());
    let mut child = spawn(&analyze(&broken, false));
    let killed = kill_when(&mut child, || {
        broken.join("classes/class-0001.json").exists()
    });
    assert!(killed, "analyze finished before it could be killed");
    assert!(!broken.join("spectrum.json").exists());
    let o = saddlescope_std()
        .args(analyze(&broken, true))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = std::fs::read_to_string(straight.join("spectrum.json")).unwrap();
    let b = std::fs::read_to_string(broken.join("spectrum.json")).unwrap();
    assert!(
        a.replace(&*straight.display().to_string(), "")
            == b.replace(&*broken.display().to_string(), ""),
        "resumed spectrum.json differs"
    );
}

#[test]
fn ctrl_c_stops_train_at_a_safe_point_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut child = saddlescope_std()
        .args(TinyRun::long().args(&run_dir))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while log_lines(&run_dir) < 2 {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the interrupt"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(
        err.contains("--resume") && !err.contains("panicked"),
        "{err}"
    );
    let done = log_lines(&run_dir);
    assert!((2..40).contains(&done), "{done} epochs");
    assert!(
        !run_dir.join(".saddlescope.lock").exists(),
        "Ctrl-C releases the directory"
    );
    // The same command again continues the run.
    let o = saddlescope_std()
        .args(TinyRun::long().args(&run_dir))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(log_lines(&run_dir), 40);
}
