//! Runs of a tiny synthetic recipe: resumed runs bit-identical to straight ones, the loss
//! falling, a second run in the same directory refused.

use saddlescope_results::read_log;

use super::*;
use crate::checkpoint::read_safetensors;
use crate::config::SamConfig;
use crate::presets::preset;
use std::cell::Cell;

/// A small, fast run: 3-class synthetic mixture, tiny MLP, SAM and DRW both on, so that
/// resume has momentum buffers, DRW switching and SAM to get right.
fn tiny_config(epochs: usize) -> TrainConfig {
    let mut c = preset("mnist-lt-ce-drw").unwrap();
    c.dataset = "synthetic:classes=3,dim=6,n=40,test=10,seed=1"
        .parse()
        .unwrap();
    c.ratio = 10.0;
    c.model = "mlp:8".parse().unwrap();
    c.epochs = epochs;
    c.batch_size = 16;
    c.lr = 0.1;
    c.reweighting = crate::config::Reweighting::FromEpoch(3);
    c.sam = Some(SamConfig {
        rho: 0.05,
        from_epoch: 2,
        schedule: vec![],
        adaptive: false,
        bn_double: false,
    });
    c.save_every = 2;
    c
}

/// Stops the run once `after` epochs are done (mid-way through the next one).
struct StopAfter<'a> {
    after: usize,
    stop: &'a AtomicBool,
    seen: Cell<usize>,
}

impl TrainObserver for StopAfter<'_> {
    fn step_done(&self, epoch: usize, _: usize, _: f64, _: f64) {
        self.seen.set(epoch);
        if epoch > self.after {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    let file = read_safetensors(path, &Device::Cpu).unwrap();
    let mut named: Vec<(String, Vec<u8>)> = file
        .tensors
        .iter()
        .map(|(n, t)| {
            let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (
                n.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    named.sort();
    named
}

#[test]
fn interrupted_and_resumed_run_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, broken) = (dir.path().join("straight"), dir.path().join("broken"));
    let never = AtomicBool::new(false);
    let mut a = Trainer::new(tiny_config(5), &straight, &Device::Cpu).unwrap();
    assert_eq!(a.run(&Silent, &never).unwrap(), RunOutcome::Finished);

    let stop = AtomicBool::new(false);
    let mut b = Trainer::new(tiny_config(5), &broken, &Device::Cpu).unwrap();
    let observer = StopAfter {
        after: 2,
        stop: &stop,
        seen: Cell::new(0),
    };
    assert_eq!(
        b.run(&observer, &stop).unwrap(),
        RunOutcome::Interrupted { epochs_done: 2 }
    );
    assert_eq!(observer.seen.get(), 3, "stopped inside epoch 3");
    drop(b);
    let mut resumed = Trainer::resume(&broken, &Device::Cpu, None).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    assert_eq!(resumed.run(&Silent, &never).unwrap(), RunOutcome::Finished);

    let run_a = RunDir::new(&straight);
    let run_b = RunDir::new(&broken);
    assert_eq!(weights(&run_a.last()), weights(&run_b.last()));
    assert_eq!(
        weights(&run_a.resume()),
        weights(&run_b.resume()),
        "momentum buffers too"
    );
    let log_b = read_log(&run_b.log()).unwrap();
    assert_eq!(
        log_b.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let log_a = read_log(&run_a.log()).unwrap();
    for (x, y) in log_a.iter().zip(&log_b) {
        assert_eq!(x.test, y.test);
        assert_eq!(x.train_loss, y.train_loss);
    }
    assert!(run_b.epoch(4).exists() && !run_b.epoch(3).exists());
}

#[test]
fn training_lowers_the_loss_on_synthetic_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(6);
    config.sam = None;
    config.reweighting = crate::config::Reweighting::Off;
    let mut trainer = Trainer::new(config, dir.path(), &Device::Cpu).unwrap();
    trainer.run(&Silent, &AtomicBool::new(false)).unwrap();
    let log = read_log(&RunDir::new(dir.path()).log()).unwrap();
    let (first, last) = (&log[0], &log[log.len() - 1]);
    assert!(
        last.train_loss < 0.7 * first.train_loss,
        "{} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(last.test.accuracy > 0.6, "{}", last.test.accuracy);
    let loaded =
        crate::checkpoint::load_checkpoint(&RunDir::new(dir.path()).last(), &Device::Cpu).unwrap();
    assert_eq!(loaded.meta.epoch, 6);
    assert_eq!(loaded.meta.test.as_ref().unwrap(), &last.test);
}

#[test]
fn a_second_run_in_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(tiny_config(3), dir.path(), &Device::Cpu).unwrap();
    t.run(&Silent, &AtomicBool::new(false)).unwrap();
    let again = Trainer::new(tiny_config(3), dir.path(), &Device::Cpu);
    assert!(matches!(again, Err(Error::RunExists { .. })));
}
