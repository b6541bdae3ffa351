//! A corpus of bad inputs, generated here (small files in a temporary `bad_inputs/`
//! directory): each must fail with a non-zero exit, one readable stderr line naming the file
//! or flag, no panic or backtrace, and no output file left behind.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use saddlescope_train::{read_safetensors, write_safetensors};

use crate::util::*;

/// Named tensors of a checkpoint, as written.
type NamedTensors = Vec<(String, Tensor)>;

/// One bad case: the arguments, the expected exit code and a substring of the message.
struct Case {
    args: Vec<String>,
    code: i32,
    needle: String,
}

fn case(args: &[&str], code: i32, needle: &str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        needle: needle.to_string(),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Writes an IDX file (optionally with a wrong magic or truncated).
fn idx(path: &Path, magic: u32, dims: &[u32], payload: &[u8]) {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(payload);
    std::fs::write(path, bytes).unwrap();
}

/// A valid 2-image MNIST directory, then `damage` applied to it.
fn mnist_dir(root: &Path, name: &str, damage: impl Fn(&Path)) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for split in ["train", "t10k"] {
        idx(
            &dir.join(format!("{split}-images-idx3-ubyte")),
            2051,
            &[2, 28, 28],
            &[7u8; 2 * 784],
        );
        idx(
            &dir.join(format!("{split}-labels-idx1-ubyte")),
            2049,
            &[2],
            &[0, 1],
        );
    }
    damage(&dir);
    dir
}

#[test]
fn every_bad_input_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bad_inputs");
    std::fs::create_dir_all(&root).unwrap();
    let out = tmp.path().join("out");
    let o = s(&out);

    // A real checkpoint to damage.
    let run_dir = tmp.path().join("run");
    TinyRun::default().train(&run_dir);
    let good = run_dir.join("last.safetensors");
    let file = read_safetensors(&good, &Device::Cpu).unwrap();
    let damaged = |name: &str, edit: &dyn Fn(&mut NamedTensors)| -> PathBuf {
        let mut tensors: NamedTensors = file
            .tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        edit(&mut tensors);
        let path = root.join(name);
        write_safetensors(&path, &tensors, file.metadata.clone()).unwrap();
        path
    };
    let nan = damaged("nan_weights.safetensors", &|t| {
        let (name, w) = t.iter_mut().find(|(n, _)| n == "linear.weight").unwrap();
        let shape = w.dims().to_vec();
        *w = Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap();
        assert_eq!(name, "linear.weight");
    });
    let wrong_shape = damaged("wrong_shape.safetensors", &|t| {
        let w = &mut t.iter_mut().find(|(n, _)| n == "fc1.weight").unwrap().1;
        *w = Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    });
    let missing = damaged("missing_tensor.safetensors", &|t| {
        t.retain(|(n, _)| n != "linear.bias")
    });
    let bytes = std::fs::read(&good).unwrap();
    let truncated = root.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let bad_header = root.join("bad_header.safetensors");
    let mut corrupt = bytes.clone();
    corrupt[8..16].copy_from_slice(b"{\"nope\":");
    std::fs::write(&bad_header, corrupt).unwrap();
    let not_zip = root.join("not_a_zip.pth");
    std::fs::write(&not_zip, b"PK\x03\x04 this is no zip archive").unwrap();
    let legacy = root.join("legacy.pth");
    std::fs::write(&legacy, b"\x80\x02}q\x00.").unwrap();

    // Data files.
    let wrong_magic = mnist_dir(&root, "mnist_wrong_magic", |d| {
        idx(&d.join("train-labels-idx1-ubyte"), 2051, &[2], &[0, 1]);
    });
    let truncated_idx = mnist_dir(&root, "mnist_truncated", |d| {
        idx(
            &d.join("train-images-idx3-ubyte"),
            2051,
            &[2, 28, 28],
            &[7u8; 784 + 5],
        );
    });
    let label_range = mnist_dir(&root, "mnist_label_range", |d| {
        idx(&d.join("t10k-labels-idx1-ubyte"), 2049, &[2], &[0, 12]);
    });
    let cifar = root.join("cifar_bad_size");
    std::fs::create_dir_all(&cifar).unwrap();
    for f in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        std::fs::write(cifar.join(format!("{f}.bin")), vec![0u8; 3073 + 10]).unwrap();
    }
    let cifar_labels = root.join("cifar_label_range");
    std::fs::create_dir_all(&cifar_labels).unwrap();
    for f in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        let mut record = vec![0u8; 3073];
        record[0] = 11;
        std::fs::write(cifar_labels.join(format!("{f}.bin")), record).unwrap();
    }

    // Matrices.
    let non_symmetric = root.join("non_symmetric.npy");
    write_npy(
        &non_symmetric,
        "<f8",
        false,
        "(2, 2)",
        &f64_le(&[1.0, 2.0, 3.0, 4.0]),
    );
    let non_square = root.join("non_square.npy");
    write_npy(&non_square, "<f8", false, "(2, 3)", &f64_le(&[0.0; 6]));
    let bad_dtype = root.join("bad_dtype.npy");
    write_npy(&bad_dtype, "<i4", false, "(2, 2)", &f64_le(&[0.0; 2]));
    let bad_npy_header = root.join("bad_header.npy");
    std::fs::write(
        &bad_npy_header,
        b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8}  \n",
    )
    .unwrap();
    let short_npy = root.join("short_data.npy");
    write_npy(&short_npy, "<f8", false, "(3, 3)", &f64_le(&[1.0; 4]));

    let a = |p: &Path| vec!["analyze".to_string(), s(p), "--out".into(), o.clone()];
    let mut cases = vec![
        case(
            &[
                "data",
                "summary",
                "--dataset",
                &format!("mnist:{}", s(&wrong_magic)),
            ],
            1,
            "bad magic",
        ),
        case(
            &[
                "data",
                "summary",
                "--dataset",
                &format!("mnist:{}", s(&truncated_idx)),
            ],
            1,
            "train-images-idx3-ubyte",
        ),
        case(
            &[
                "data",
                "summary",
                "--dataset",
                &format!("mnist:{}", s(&label_range)),
            ],
            1,
            "t10k-labels-idx1-ubyte",
        ),
        case(
            &[
                "data",
                "summary",
                "--dataset",
                &format!("cifar10:{}", s(&cifar)),
            ],
            1,
            "3073",
        ),
        case(
            &[
                "data",
                "summary",
                "--dataset",
                &format!("cifar10:{}", s(&cifar_labels)),
            ],
            1,
            "label 11",
        ),
        case(
            &["spectrum", "--matrix", &s(&non_symmetric), "--out", &o],
            1,
            "non_symmetric.npy",
        ),
        case(
            &["spectrum", "--matrix", &s(&non_square), "--out", &o],
            1,
            "non_square.npy",
        ),
        case(
            &["spectrum", "--matrix", &s(&bad_dtype), "--out", &o],
            1,
            "bad_dtype.npy",
        ),
        case(
            &["spectrum", "--matrix", &s(&bad_npy_header), "--out", &o],
            1,
            "bad_header.npy",
        ),
        case(
            &["spectrum", "--matrix", &s(&short_npy), "--out", &o],
            1,
            "short_data.npy",
        ),
        // Checkpoints.
        case(
            &[
                "analyze",
                &s(&run_dir.join("last.safetensors")),
                "--out",
                &o,
                "--dataset",
                "synthetic:classes=4,dim=6,n=40,test=10,seed=1",
            ],
            1,
            "does not match",
        ),
    ];
    for (path, needle) in [
        (&nan, "linear.weight"),
        (&wrong_shape, "fc1.weight"),
        (&missing, "linear.bias"),
        (&truncated, "truncated.safetensors"),
        (&bad_header, "bad_header.safetensors"),
        (&not_zip, "not_a_zip.pth"),
        (&legacy, "legacy.pth"),
    ] {
        cases.push(Case {
            args: a(path),
            code: 1,
            needle: needle.to_string(),
        });
    }
    // Flags out of range.
    let ckpt = s(&good);
    for (flag, value, sub) in [
        ("--lanczos-steps", "0", "analyze"),
        ("--probes", "0", "analyze"),
        ("--tol", "-1", "analyze"),
        ("--saddle-ratio", "-1", "analyze"),
        ("--max-gradient-ratio", "0", "analyze"),
        ("--min-skill", "1", "analyze"),
        ("--diverged-loss-ratio", "0.5", "analyze"),
        ("--samples-per-class", "0", "analyze"),
        ("--threads", "0", "analyze"),
        ("--split", "val", "analyze"),
        ("--loss", "hinge", "analyze"),
        ("--dtype", "f16", "analyze"),
        ("--basis", "f16", "analyze"),
        ("--class-ids", "99", "analyze"),
        ("--batch-size", "0", "analyze"),
    ] {
        cases.push(case(&[sub, &ckpt, "--out", &o, flag, value], 2, flag));
    }
    for (flag, value) in [
        ("--ratio", "0.5"),
        ("--batch-size", "0"),
        ("--momentum", "1.5"),
        ("--weight-decay", "-1"),
        ("--lr", "-0.1"),
        ("--epochs", "0"),
        ("--sam", "-0.5"),
        ("--model", "transformer"),
        ("--dtype", "f16"),
        ("--schedule", "linear"),
        ("--imbalance", "zipf"),
        ("--groups", "halves"),
    ] {
        cases.push(case(&["train", "--out", &o, flag, value], 2, flag));
    }
    cases.push(case(
        &["train", "--out", &o, "--drw", "--drw-epoch", "0"],
        2,
        "--drw-epoch",
    ));
    cases.push(case(
        &["train", "--out", &o, "--sam", "0.1", "--sam-from", "0"],
        2,
        "--sam-from",
    ));
    cases.push(case(&["train", "--out", &o, "--sam-from", "3"], 2, "--sam"));
    cases.push(case(&["data", "counts", "--classes", "0"], 2, "--classes"));
    cases.push(case(
        &[
            "spectrum",
            "--matrix",
            &s(&non_square),
            "--out",
            &o,
            "--lanczos-steps",
            "0",
        ],
        2,
        "--lanczos-steps",
    ));

    let mut failures = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let output = run(&args);
        let err = stderr(&output);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let ok = output.status.code() == Some(c.code)
            && lines.len() == 1
            && lines[0].starts_with("error:")
            && lines[0].contains(&c.needle)
            && !err.contains("panicked");
        if !ok {
            failures.push(format!(
                "{:?}: exit {:?}, stderr {err:?} (wanted exit {} and {:?})",
                c.args,
                output.status.code(),
                c.code,
                c.needle
            ));
        }
        let leftovers: Vec<PathBuf> =
            std::fs::read_dir(&out).map_or(vec![], |d| d.map(|e| e.unwrap().path()).collect());
        let written: Vec<&PathBuf> = leftovers
            .iter()
            .filter(|p| p.is_file() || p.join("spectrum.json").exists())
            .collect();
        if !written.is_empty() {
            failures.push(format!("{:?} left files behind: {written:?}", c.args));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("bad-input corpus: {} cases passed", cases.len());
}
