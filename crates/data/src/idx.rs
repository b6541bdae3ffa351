//! MNIST's IDX format (also Fashion-MNIST's, and the embedded `mnist10k`): a big-endian
//! header — magic 2051 (`0x0803`: u8 data, 3 dimensions) then count, rows, cols for images;
//! magic 2049 (`0x0801`: u8 data, 1 dimension) then count for labels — followed by the raw
//! bytes. Files may be gzip-compressed. Every check compares the header with the actual
//! byte count before anything is allocated from it, so a lying header cannot exhaust memory.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, ImageShape, Pixels, Split};
use crate::error::{Error, Result};
use crate::io;
use crate::normalize::Normalization;
use crate::spec::DatasetSpec;

/// Magic number of an IDX file of u8 images (3 dimensions).
const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of u8 labels (1 dimension).
const LABELS_MAGIC: u32 = 2049;
/// MNIST and Fashion-MNIST have ten classes.
const CLASSES: usize = 10;
/// The four files of a split pair, in the original MNIST naming.
const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "test-images-idx3-ubyte",
    "test-labels-idx1-ubyte",
];

/// Where the embedded copy came from (used in messages; the bytes are in the binary).
const MNIST10K_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist10k");
/// The embedded `mnist10k` files, in the order of [`FILES`] (gzip, 1.6 MB in total): the demo
/// runs from a moved binary with nothing downloaded.
const MNIST10K: [&[u8]; 4] = [
    include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist10k/train-images-idx3-ubyte.gz"
    )),
    include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist10k/train-labels-idx1-ubyte.gz"
    )),
    include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist10k/test-images-idx3-ubyte.gz"
    )),
    include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist10k/test-labels-idx1-ubyte.gz"
    )),
];

/// Decoded IDX images.
#[derive(Debug)]
pub(crate) struct IdxImages {
    pub(crate) count: usize,
    pub(crate) shape: ImageShape,
    pub(crate) pixels: Vec<u8>,
}

fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Checks the magic and that the file holds exactly `header + payload` bytes, where `payload`
/// comes from `dims` (read from the header once its length is known to be there).
fn check_layout(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    what: &'static str,
    dims: usize,
) -> Result<Vec<u32>> {
    let header = 4 + 4 * dims;
    let truncated = |expected: u128| Error::Truncated {
        path: path.to_path_buf(),
        expected,
        found: bytes.len(),
    };
    if bytes.len() < 4 {
        return Err(truncated(header as u128));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(truncated(header as u128));
    }
    let sizes: Vec<u32> = (0..dims).map(|d| be_u32(bytes, 4 + 4 * d)).collect();
    // At most 2^96 for three u32 dimensions: u128 cannot overflow.
    let expected = header as u128 + sizes.iter().map(|&s| u128::from(s)).product::<u128>();
    if (bytes.len() as u128) < expected {
        return Err(truncated(expected));
    }
    if bytes.len() as u128 > expected {
        return Err(Error::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            found: bytes.len(),
        });
    }
    if sizes[0] == 0 {
        return Err(Error::NoSamples {
            path: path.to_path_buf(),
        });
    }
    Ok(sizes)
}

/// Parses an IDX image file (already decompressed); `path` is for messages.
pub(crate) fn parse_images(path: &Path, bytes: &[u8]) -> Result<IdxImages> {
    let sizes = check_layout(path, bytes, IMAGES_MAGIC, "IDX images", 3)?;
    let (rows, cols) = (sizes[1], sizes[2]);
    if rows == 0 || cols == 0 {
        return Err(Error::ZeroSizeImages {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    Ok(IdxImages {
        count: sizes[0] as usize,
        shape: ImageShape {
            channels: 1,
            height: rows as usize,
            width: cols as usize,
        },
        pixels: bytes[16..].to_vec(),
    })
}

/// Parses an IDX label file (already decompressed), checking every label `< classes`.
pub(crate) fn parse_labels(path: &Path, bytes: &[u8], classes: usize) -> Result<Vec<u32>> {
    check_layout(path, bytes, LABELS_MAGIC, "IDX labels", 1)?;
    bytes[8..]
        .iter()
        .enumerate()
        .map(|(index, &label)| {
            if (label as usize) < classes {
                Ok(u32::from(label))
            } else {
                Err(Error::LabelOutOfRange {
                    path: path.to_path_buf(),
                    index,
                    label: u32::from(label),
                    classes,
                })
            }
        })
        .collect()
}

/// One split from its (decompressed) image and label files.
fn split(images: (&Path, &[u8]), labels: (&Path, &[u8])) -> Result<Split> {
    let decoded = parse_images(images.0, images.1)?;
    let label_values = parse_labels(labels.0, labels.1, CLASSES)?;
    if label_values.len() != decoded.count {
        return Err(Error::CountMismatch {
            labels_path: labels.0.to_path_buf(),
            labels: label_values.len(),
            images_path: images.0.to_path_buf(),
            images: decoded.count,
        });
    }
    Ok(Split::new(
        Pixels::U8(decoded.pixels),
        label_values,
        decoded.shape,
        CLASSES,
        Normalization::mnist(),
    ))
}

/// The data set from the four files `(path, decompressed bytes)` in the order of [`FILES`].
fn assemble(spec: DatasetSpec, files: [(PathBuf, Vec<u8>); 4]) -> Result<Dataset> {
    let [train_images, train_labels, test_images, test_labels] = &files;
    let train = split(
        (&train_images.0, &train_images.1),
        (&train_labels.0, &train_labels.1),
    )?;
    let test = split(
        (&test_images.0, &test_images.1),
        (&test_labels.0, &test_labels.1),
    )?;
    if test.shape() != train.shape() {
        return Err(Error::ShapeMismatch {
            path: test_images.0.clone(),
            found: test.shape(),
            expected: train.shape(),
        });
    }
    let names = (0..CLASSES).map(|c| c.to_string()).collect();
    Ok(Dataset::new(spec, train, test, names))
}

/// Reads `train-images-idx3-ubyte[.gz]` and the three other MNIST files from `dir`.
pub(crate) fn load_dir(spec: DatasetSpec, dir: &Path) -> Result<Dataset> {
    io::require_dir(dir)?;
    // Look for all four files before reading any, so a missing one is reported at once. The
    // original MNIST and Fashion-MNIST name the test split `t10k-*`, mnist10k `test-*`.
    let paths = all(FILES.map(|name| match name.strip_prefix("test-") {
        Some(rest) => io::find_maybe_gz(dir, &format!("t10k-{rest}"))
            .or_else(|_| io::find_maybe_gz(dir, name)),
        None => io::find_maybe_gz(dir, name),
    }))?;
    let files = all(paths.map(|path| io::read(&path).map(|bytes| (path, bytes))))?;
    assemble(spec, files)
}

/// Decodes the embedded `mnist10k` copy.
pub(crate) fn load_embedded(spec: DatasetSpec) -> Result<Dataset> {
    let files = all(std::array::from_fn(|i| {
        let path = Path::new(MNIST10K_DIR).join(format!("{}.gz", FILES[i]));
        io::maybe_gunzip(&path, MNIST10K[i].to_vec()).map(|bytes| (path, bytes))
    }))?;
    assemble(spec, files)
}

/// The first error of four results, or their four values.
fn all<T>([a, b, c, d]: [Result<T>; 4]) -> Result<[T; 4]> {
    Ok([a?, b?, c?, d?])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX image file: magic 2051, then count, rows, cols, then the pixels.
    pub(crate) fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [IMAGES_MAGIC, count, rows, cols] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(pixels);
        out
    }

    /// An IDX label file: magic 2049, then count, then the labels.
    pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        out.extend_from_slice(labels);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A 2x3 train split of 3 images (labels 0, 9, 4) and a 2x3 test split of 2 (labels 1, 1);
    /// pixel j of image i is `10 i + j`.
    fn write_mnist(dir: &Path, gz: bool) {
        let pixels = |n: u8| {
            (0..n)
                .flat_map(|i| (0..6).map(move |j| 10 * i + j))
                .collect::<Vec<u8>>()
        };
        let files = [
            idx_images(3, 2, 3, &pixels(3)),
            idx_labels(&[0, 9, 4]),
            idx_images(2, 2, 3, &pixels(2)),
            idx_labels(&[1, 1]),
        ];
        for (name, bytes) in FILES.iter().zip(files) {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    fn spec(dir: &Path) -> DatasetSpec {
        DatasetSpec::Mnist(dir.to_path_buf())
    }

    #[test]
    fn reads_a_directory_raw_or_gzip() {
        for gz in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_mnist(dir.path(), gz);
            let data = load_dir(spec(dir.path()), dir.path()).unwrap();
            assert_eq!(data.classes(), 10);
            assert_eq!(data.class_names()[9], "9");
            assert_eq!(data.shape().dims(), [1, 2, 3]);
            assert_eq!(data.normalization(), &Normalization::mnist());
            assert_eq!(data.train().labels(), &[0, 9, 4]);
            assert_eq!(data.test().labels(), &[1, 1]);
            let expected: Vec<u8> = (0..3)
                .flat_map(|i| (0..6).map(move |j| 10 * i + j))
                .collect();
            assert_eq!(data.train().pixels(), &Pixels::U8(expected));
        }
    }

    #[test]
    fn embedded_mnist10k_has_the_readme_counts() {
        // data/mnist10k/README.md: train 0:801 1:927 2:791 3:832 4:780 5:663 6:814 7:870
        // 8:744 9:778 (8,000); test 200 per class (2,000); 28x28.
        let data = load_embedded(DatasetSpec::Mnist10k).unwrap();
        assert_eq!(
            data.train().class_counts(),
            vec![801, 927, 791, 832, 780, 663, 814, 870, 744, 778]
        );
        assert_eq!(data.test().class_counts(), vec![200; 10]);
        assert_eq!(data.shape().dims(), [1, 28, 28]);
        // Interleaved round-robin over classes (README): the first labels are 0, 1, 2, ...
        assert_eq!(
            &data.train().labels()[..10],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
    }

    #[test]
    fn wrong_magic_names_file_and_kind() {
        let path = Path::new("data/x/train-labels-idx1-ubyte.gz");
        let err = parse_labels(path, &idx_images(1, 1, 1, &[0]), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data/x/train-labels-idx1-ubyte.gz: bad magic 2051, expected 2049 (IDX labels)"
        );
        let err = parse_images(Path::new("i"), &idx_labels(&[0])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "i: bad magic 2049, expected 2051 (IDX images)"
        );
    }

    #[test]
    fn truncated_and_trailing_files_are_reported() {
        let p = Path::new("f");
        let full = idx_images(2, 2, 2, &[0; 8]);
        let err = parse_images(p, &full[..full.len() - 1]).unwrap_err();
        assert_eq!(err.to_string(), "f: truncated: expected 24 bytes, found 23");
        let err = parse_images(p, &full[..10]).unwrap_err();
        assert_eq!(err.to_string(), "f: truncated: expected 16 bytes, found 10");
        let err = parse_images(p, &full[..3]).unwrap_err();
        assert_eq!(err.to_string(), "f: truncated: expected 16 bytes, found 3");
        let mut long = full.clone();
        long.push(0);
        let err = parse_images(p, &long).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f: 25 bytes, but the header implies 24 (trailing data)"
        );
        let labels = idx_labels(&[1, 2, 3]);
        let err = parse_labels(p, &labels[..9], 10).unwrap_err();
        assert_eq!(err.to_string(), "f: truncated: expected 11 bytes, found 9");
    }

    #[test]
    fn huge_declared_dimensions_fail_without_allocating() {
        let bytes = idx_images(u32::MAX, u32::MAX, u32::MAX, &[1, 2, 3]);
        let err = parse_images(Path::new("f"), &bytes).unwrap_err();
        let expected = 16 + u128::from(u32::MAX).pow(3);
        assert!(
            matches!(err, Error::Truncated { expected: e, found: 19, .. } if e == expected),
            "{err:?}"
        );
    }

    #[test]
    fn empty_and_zero_size_images_are_rejected() {
        let err = parse_images(Path::new("f"), &idx_images(0, 28, 28, &[])).unwrap_err();
        assert_eq!(err.to_string(), "f: no samples");
        let err = parse_images(Path::new("f"), &idx_images(5, 0, 28, &[])).unwrap_err();
        assert_eq!(err.to_string(), "f: zero-size images (0x28)");
    }

    #[test]
    fn label_out_of_range_names_file_and_sample() {
        let err = parse_labels(Path::new("l"), &idx_labels(&[3, 10, 2]), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "l: label 10 of sample 1 is out of range (expected < 10)"
        );
    }

    #[test]
    fn directory_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_dir(spec(&missing), &missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no such directory", missing.display())
        );

        write_mnist(dir.path(), false);
        std::fs::remove_file(dir.path().join(FILES[3])).unwrap();
        let err = load_dir(spec(dir.path()), dir.path()).unwrap_err();
        let name = dir.path().join(FILES[3]);
        assert_eq!(
            err.to_string(),
            format!("{}[.gz]: no such file", name.display())
        );
    }

    #[test]
    fn count_and_shape_disagreements_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), false);
        std::fs::write(dir.path().join(FILES[1]), idx_labels(&[0, 1])).unwrap();
        let err = load_dir(spec(dir.path()), dir.path()).unwrap_err();
        let (labels, images) = (dir.path().join(FILES[1]), dir.path().join(FILES[0]));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 2 labels, but {} has 3 images",
                labels.display(),
                images.display()
            )
        );

        write_mnist(dir.path(), false);
        std::fs::write(dir.path().join(FILES[2]), idx_images(2, 3, 2, &[0; 12])).unwrap();
        let err = load_dir(spec(dir.path()), dir.path()).unwrap_err();
        let test_images = dir.path().join(FILES[2]);
        assert_eq!(
            err.to_string(),
            format!(
                "{}: images are 1x3x2, but the train split's are 1x2x3",
                test_images.display()
            )
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_images(Path::new("f"), &bytes);
            let _ = parse_labels(Path::new("f"), &bytes, 10);
            let _ = io::maybe_gunzip(Path::new("f"), bytes.clone());
            let _ = io::maybe_gunzip(Path::new("f"), [&[0x1f, 0x8b][..], &bytes].concat());
        }

        #[test]
        fn arbitrary_headers_never_panic(
            count in 0u32..6, rows in 0u32..6, cols in 0u32..6,
            magic in proptest::sample::select(vec![IMAGES_MAGIC, LABELS_MAGIC, 0]),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut bytes = idx_images(count, rows, cols, &tail);
            bytes[..4].copy_from_slice(&magic.to_be_bytes());
            let _ = parse_images(Path::new("f"), &bytes);
            let _ = parse_labels(Path::new("f"), &bytes, 10);
        }
    }
}
