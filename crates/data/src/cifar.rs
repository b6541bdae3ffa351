//! CIFAR-10 and CIFAR-100 in their "binary version" distributions: files of fixed-size
//! records, each a label (CIFAR-10: 1 byte) or coarse and fine labels (CIFAR-100: 2 bytes)
//! followed by 3,072 pixel bytes — 1,024 red, 1,024 green, 1,024 blue, each 32x32 row-major,
//! which is already the `(C, H, W)` layout of a batch. CIFAR-100 uses the fine label.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, ImageShape, Pixels, Split};
use crate::error::{Error, Result};
use crate::io;
use crate::normalize::Normalization;
use crate::spec::DatasetSpec;

/// Shape of a CIFAR image.
const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

/// The CIFAR-10 class names, in label order (`batches.meta.txt`).
const CIFAR10_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The CIFAR-100 fine class names, in label order (`fine_label_names.txt`).
const CIFAR100_NAMES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// How one variant lays out its records.
#[derive(Debug, Clone, Copy)]
struct Format {
    /// Label bytes before the pixels.
    label_bytes: usize,
    /// Which of them is the label used (CIFAR-100: 1, the fine label).
    label_at: usize,
    /// Number of classes (labels must be below it).
    classes: usize,
}

const CIFAR10: Format = Format {
    label_bytes: 1,
    label_at: 0,
    classes: 10,
};

const CIFAR100: Format = Format {
    label_bytes: 2,
    label_at: 1,
    classes: 100,
};

/// Pixels and labels of one record file (already decompressed); `path` is for messages.
fn parse_records(path: &Path, bytes: &[u8], format: Format) -> Result<(Vec<u8>, Vec<u32>)> {
    let record = format.label_bytes + SHAPE.len();
    if !bytes.len().is_multiple_of(record) {
        return Err(Error::RecordSize {
            path: path.to_path_buf(),
            size: bytes.len(),
            record,
        });
    }
    if bytes.is_empty() {
        return Err(Error::NoSamples {
            path: path.to_path_buf(),
        });
    }
    let mut pixels = Vec::with_capacity(bytes.len() / record * SHAPE.len());
    let mut labels = Vec::with_capacity(bytes.len() / record);
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[format.label_at];
        if label as usize >= format.classes {
            return Err(Error::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: u32::from(label),
                classes: format.classes,
            });
        }
        labels.push(u32::from(label));
        pixels.extend_from_slice(&chunk[format.label_bytes..]);
    }
    Ok((pixels, labels))
}

/// One split from the record files `names` in `dir`, concatenated in that order.
fn split(dir: &Path, names: &[&str], format: Format, norm: &Normalization) -> Result<Split> {
    let paths = names
        .iter()
        .map(|name| io::find(dir, name))
        .collect::<Result<Vec<PathBuf>>>()?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let (p, l) = parse_records(&path, &io::read(&path)?, format)?;
        pixels.extend(p);
        labels.extend(l);
    }
    Ok(Split::new(
        Pixels::U8(pixels),
        labels,
        SHAPE,
        format.classes,
        norm.clone(),
    ))
}

/// `dir`, or `dir/subdir` when the files are there (the layout of the extracted archive).
fn resolve(dir: &Path, subdir: &str, probe: &str) -> Result<PathBuf> {
    io::require_dir(dir)?;
    let nested = dir.join(subdir);
    if !dir.join(probe).exists() && nested.join(probe).exists() {
        Ok(nested)
    } else {
        Ok(dir.to_path_buf())
    }
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Reads `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin` from `dir` (or from
/// its `cifar-10-batches-bin/`).
pub(crate) fn load_cifar10(spec: DatasetSpec, dir: &Path) -> Result<Dataset> {
    let dir = resolve(dir, "cifar-10-batches-bin", "data_batch_1.bin")?;
    let norm = Normalization::cifar10();
    let train_files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ];
    let train = split(&dir, &train_files, CIFAR10, &norm)?;
    let test = split(&dir, &["test_batch.bin"], CIFAR10, &norm)?;
    Ok(Dataset::new(spec, train, test, names(&CIFAR10_NAMES)))
}

/// Reads `train.bin` and `test.bin` from `dir` (or from its `cifar-100-binary/`).
pub(crate) fn load_cifar100(spec: DatasetSpec, dir: &Path) -> Result<Dataset> {
    let dir = resolve(dir, "cifar-100-binary", "train.bin")?;
    let norm = Normalization::cifar100();
    let train = split(&dir, &["train.bin"], CIFAR100, &norm)?;
    let test = split(&dir, &["test.bin"], CIFAR100, &norm)?;
    Ok(Dataset::new(spec, train, test, names(&CIFAR100_NAMES)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records with the given labels; pixel j of record i is `(i + j) % 256`.
    fn records(labels: &[&[u8]]) -> Vec<u8> {
        labels
            .iter()
            .enumerate()
            .flat_map(|(i, label)| {
                let pixels = (0..SHAPE.len()).map(move |j| ((i + j) % 256) as u8);
                label.iter().copied().chain(pixels)
            })
            .collect()
    }

    fn write_cifar10(dir: &Path) {
        for b in 1..=5u8 {
            let file = records(&[&[b], &[b + 4]]);
            std::fs::write(dir.join(format!("data_batch_{b}.bin")), file).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), records(&[&[9], &[0], &[3]])).unwrap();
    }

    #[test]
    fn reads_cifar10_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        let spec = DatasetSpec::Cifar10(dir.path().to_path_buf());
        let data = load_cifar10(spec, dir.path()).unwrap();
        assert_eq!(data.train().labels(), &[1, 5, 2, 6, 3, 7, 4, 8, 5, 9]);
        assert_eq!(data.test().labels(), &[9, 0, 3]);
        assert_eq!(data.shape().dims(), [3, 32, 32]);
        assert_eq!(data.class_names()[9], "truck");
        assert_eq!(data.normalization(), &Normalization::cifar10());
        let Pixels::U8(pixels) = data.test().pixels() else {
            panic!("CIFAR pixels are u8")
        };
        // Record 1 of test_batch.bin: pixel j is (1 + j) % 256, channel-major like the file.
        assert_eq!(pixels[SHAPE.len()..SHAPE.len() + 3], [1, 2, 3]);
        assert_eq!(pixels[2 * SHAPE.len() - 1], ((1 + 3071) % 256) as u8);
    }

    #[test]
    fn finds_files_in_the_archive_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_cifar10(&nested);
        let data = load_cifar10(DatasetSpec::Cifar10(dir.path().into()), dir.path()).unwrap();
        assert_eq!(data.train().len(), 10);
    }

    #[test]
    fn reads_cifar100_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.bin"),
            records(&[&[19, 99], &[0, 42]]),
        )
        .unwrap();
        std::fs::write(dir.path().join("test.bin"), records(&[&[3, 7]])).unwrap();
        let spec = DatasetSpec::Cifar100(dir.path().to_path_buf());
        let data = load_cifar100(spec, dir.path()).unwrap();
        assert_eq!(data.classes(), 100);
        assert_eq!(data.train().labels(), &[99, 42]);
        assert_eq!(data.test().labels(), &[7]);
        assert_eq!(data.class_names()[99], "worm");
        assert_eq!(data.class_names()[42], "leopard");
        assert_eq!(data.normalization(), &Normalization::cifar100());
    }

    #[test]
    fn bad_record_files_name_the_file() {
        let p = Path::new("d/test_batch.bin");
        let mut bytes = records(&[&[1], &[2]]);
        bytes.pop();
        let err = parse_records(p, &bytes, CIFAR10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/test_batch.bin: size 6145 is not a multiple of the 3073-byte record"
        );
        let err = parse_records(p, &records(&[&[1], &[10]]), CIFAR10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/test_batch.bin: label 10 of sample 1 is out of range (expected < 10)"
        );
        let err = parse_records(p, &records(&[&[0, 100]]), CIFAR100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/test_batch.bin: label 100 of sample 0 is out of range (expected < 100)"
        );
        let err = parse_records(p, &records(&[&[1]]), CIFAR100).unwrap_err();
        assert!(
            matches!(err, Error::RecordSize { record: 3074, .. }),
            "{err:?}"
        );
        let err = parse_records(p, &[], CIFAR10).unwrap_err();
        assert_eq!(err.to_string(), "d/test_batch.bin: no samples");
    }

    #[test]
    fn missing_files_and_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let err = load_cifar10(DatasetSpec::Cifar10(dir.path().into()), dir.path()).unwrap_err();
        let missing = dir.path().join("data_batch_4.bin");
        assert_eq!(
            err.to_string(),
            format!("{}: no such file", missing.display())
        );
        let gone = dir.path().join("gone");
        let err = load_cifar100(DatasetSpec::Cifar100(gone.clone()), &gone).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no such directory", gone.display())
        );
    }

    #[test]
    fn class_name_lists_are_complete_and_distinct() {
        let mut names: Vec<&str> = CIFAR100_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 100);
        assert_eq!(
            names,
            CIFAR100_NAMES.to_vec(),
            "fine_label_names.txt is alphabetical"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            labels in proptest::collection::vec(proptest::num::u8::ANY, 0..8),
            cut in 0usize..3074,
        ) {
            let mut bytes = vec![0u8; labels.len() * 3073];
            for (i, &label) in labels.iter().enumerate() {
                bytes[i * 3073] = label;
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = parse_records(Path::new("f"), &bytes, CIFAR10);
            let _ = parse_records(Path::new("f"), &bytes, CIFAR100);
        }
    }
}
