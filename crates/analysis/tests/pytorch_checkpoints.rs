//! PyTorch interoperability: the ResNet-32 checkpoints written by
//! `tests/fixtures/pytorch/make_fixtures.py` (PyTorch's zip format, the reference code's
//! module names) load through [`read_checkpoint`] + [`build_model`], with and without the
//! `module.` prefix and with either head, and give PyTorch's eval-mode logits; broken files
//! fail with one-line errors naming the file and the bad tensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use saddlescope_analysis::{build_model, read_checkpoint, ArchHints, SourceFormat};
use saddlescope_nn::{BnMode, Model};
use serde_json::Value;

/// Relative tolerance of the logits (f32, summation orders differ between candle and
/// PyTorch): `|ours − torch| ≤ 1e-4 · max(|torch|, max |torch logits of the model|)`.
const LOGIT_RTOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pytorch")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The probe batch of `make_fixtures.py`: `x.flatten()[i] = f32(sin(step · i))` (f64 sine),
/// shaped as recorded in `expected.json`.
fn probe_input(expected: &Value) -> Tensor {
    let shape: Vec<usize> = expected["input"]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let step = expected["input"]["step"].as_f64().unwrap();
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (step * i as f64).sin() as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn hints(arch: &str) -> ArchHints {
    ArchHints {
        arch: Some(arch.parse().unwrap()),
        classes: None,
    }
}

/// Reads a fixture, checks its format and names, builds the model with the class count
/// inferred, and compares its eval-mode logits with PyTorch's.
fn check_fixture(name: &str) -> Model {
    let expected = expected();
    let want = &expected["models"][name];
    let arch = want["arch"].as_str().unwrap();
    let path = fixtures().join(name);
    let file = read_checkpoint(&path).unwrap();
    assert_eq!(file.format, SourceFormat::Pytorch, "{name}");
    assert!(file.meta.is_none());
    assert_eq!(file.sha256.len(), 64);
    // Every state_dict entry (num_batches_tracked included), none left prefixed, nothing
    // else of the dict checkpoint (epoch, arch, best_acc1).
    assert_eq!(
        file.tensors.len() as u64,
        want["tensors"].as_u64().unwrap(),
        "{name}"
    );
    assert!(
        file.tensors.keys().all(|k| !k.starts_with("module.")),
        "{name}: a `module.` prefix survived"
    );
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "layer3.4.bn2.bias",
        "linear.weight",
    ] {
        assert!(file.tensors.contains_key(key), "{name}: no {key}");
    }
    let model = build_model(
        &path,
        file,
        &hints(arch),
        [3, 32, 32],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(model.classes(), want["classes"].as_u64().unwrap() as usize);
    assert_eq!(model.spec().to_string(), arch);

    let got: Vec<Vec<f32>> = model
        .forward(&probe_input(&expected), BnMode::Eval)
        .unwrap()
        .to_vec2()
        .unwrap();
    let want: Vec<Vec<f32>> = want["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g_row, w_row)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g_row.len(), w_row.len());
        for (j, (g, w)) in g_row.iter().zip(w_row).enumerate() {
            let tol = LOGIT_RTOL * w.abs().max(scale);
            assert!(
                (g - w).abs() <= tol,
                "{name}: logit [{i}][{j}] = {g}, PyTorch {w} (tolerance {tol:e})"
            );
        }
    }
    model
}

/// A DataParallel dict checkpoint (`{"epoch", "arch", "state_dict": {"module.…"}, "best_acc1"}`)
/// with a `Linear` head.
#[test]
fn dataparallel_dict_checkpoint_matches_pytorch_logits() {
    check_fixture("resnet32_dp.pth.tar");
}

/// A bare state_dict without prefix, `NormedLinear` head (weight `(64, 10)`: the class
/// count is read from its second dimension).
#[test]
fn bare_normed_state_dict_matches_pytorch_logits() {
    check_fixture("resnet32_normed.pth");
}

/// The message of an error, checked to be one line naming `path`.
fn one_line_naming(err: impl std::fmt::Display, path: &Path) -> String {
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(
        message.contains(&path.display().to_string()),
        "does not name {}: {message}",
        path.display()
    );
    message
}

/// The state of a loaded fixture with one tensor removed, one renamed and one reshaped,
/// written as a safetensors file with PyTorch names: the error lists exactly those.
#[test]
fn state_mismatch_names_missing_unexpected_and_misshaped_tensors() {
    let source = fixtures().join("resnet32_dp.pth.tar");
    let file = read_checkpoint(&source).unwrap();
    let mut tensors: HashMap<String, Tensor> = file.tensors;
    // The state as loaded is complete: a safetensors copy of it builds.
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.safetensors");
    candle_core::safetensors::save(&tensors, &whole).unwrap();
    let copy = read_checkpoint(&whole).unwrap();
    assert_eq!(copy.format, SourceFormat::Safetensors);
    build_model(
        &whole,
        copy,
        &hints("resnet32"),
        [3, 32, 32],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();

    tensors.remove("layer2.3.bn1.running_var").unwrap();
    let renamed = tensors.remove("layer3.4.conv2.weight").unwrap();
    tensors.insert("layer3.4.conv2.weights".into(), renamed);
    let bias = tensors.remove("bn1.bias").unwrap();
    tensors.insert("bn1.bias".into(), bias.narrow(0, 0, 15).unwrap());
    let broken = dir.path().join("broken.safetensors");
    candle_core::safetensors::save(&tensors, &broken).unwrap();
    let file = read_checkpoint(&broken).unwrap();
    let err = build_model(
        &broken,
        file,
        &hints("resnet32"),
        [3, 32, 32],
        DType::F32,
        &Device::Cpu,
    )
    .expect_err("a broken state must not build");
    let message = one_line_naming(err, &broken);
    for part in [
        "missing ",
        "layer2.3.bn1.running_var",
        "layer3.4.conv2.weight",
        "unexpected layer3.4.conv2.weights",
        "mis-shaped bn1.bias (model [16], state [15])",
    ] {
        assert!(message.contains(part), "no {part:?} in: {message}");
    }
}

/// The NormedLinear checkpoint read as `resnet32` (Linear head): the head's tensors are
/// named in the error.
#[test]
fn wrong_head_names_the_classifier_tensors() {
    let path = fixtures().join("resnet32_normed.pth");
    let file = read_checkpoint(&path).unwrap();
    let err = build_model(
        &path,
        file,
        &ArchHints {
            arch: Some("resnet32".parse().unwrap()),
            classes: Some(10),
        },
        [3, 32, 32],
        DType::F32,
        &Device::Cpu,
    )
    .expect_err("a NormedLinear head must not load as Linear");
    let message = one_line_naming(err, &path);
    assert!(
        message.contains("missing linear.bias"),
        "no missing bias in: {message}"
    );
    assert!(
        message.contains("linear.weight (model [10, 64], state [64, 10])"),
        "no mis-shaped weight in: {message}"
    );
}

/// Neither zip nor safetensors, and a zip cut short: one-line errors naming the file.
#[test]
fn garbage_and_truncated_files_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint, just some text\n").unwrap();
    one_line_naming(read_checkpoint(&garbage).err().unwrap(), &garbage);

    let bytes = std::fs::read(fixtures().join("resnet32_normed.pth")).unwrap();
    let truncated = dir.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    one_line_naming(read_checkpoint(&truncated).err().unwrap(), &truncated);

    let tiny = dir.path().join("tiny.pth");
    std::fs::write(&tiny, b"PK").unwrap();
    let message = one_line_naming(read_checkpoint(&tiny).err().unwrap(), &tiny);
    assert!(message.contains("truncated"), "{message}");
}
