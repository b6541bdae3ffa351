//! The in-memory data set: two [`Split`]s of compact raw samples (u8 pixels for images, f32
//! for synthetic vectors) with their labels, the class names and the data set's
//! normalization. Conversion to normalized floating point happens only when batching
//! (`batch.rs`), so CIFAR-10 stays at 180 MB rather than 720 MB.

use std::fmt;

use crate::error::{Error, Result};
use crate::normalize::Normalization;
use crate::spec::DatasetSpec;

/// Shape of one sample, `(channels, height, width)`, the layout of a batch's last three axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels (1 for MNIST and synthetic data, 3 for CIFAR).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Values per sample, `channels * height * width`.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether a sample holds no values (never true for a loaded data set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[channels, height, width]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

impl fmt::Display for ImageShape {
    /// `CxHxW`, e.g. `1x28x28`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Raw sample values of a split, sample after sample, each in `(C, H, W)` row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// 8-bit pixels (MNIST, CIFAR), scaled by 1/255 when batched.
    U8(Vec<u8>),
    /// Real-valued features (synthetic mixtures), used as stored.
    F32(Vec<f32>),
}

impl Pixels {
    /// Total number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Whether no values are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of samples `indices`, in that order.
    fn gather(&self, sample_len: usize, indices: &[usize]) -> Pixels {
        fn pick<T: Copy>(v: &[T], sample_len: usize, indices: &[usize]) -> Vec<T> {
            indices
                .iter()
                .flat_map(|&i| &v[i * sample_len..(i + 1) * sample_len])
                .copied()
                .collect()
        }
        match self {
            Pixels::U8(v) => Pixels::U8(pick(v, sample_len, indices)),
            Pixels::F32(v) => Pixels::F32(pick(v, sample_len, indices)),
        }
    }
}

/// One split (train or test): samples, labels, and what is needed to batch them.
///
/// Invariants (kept by the readers, which check the files): `pixels.len() == labels.len() *
/// shape.len()`, every label `< classes`, and the normalization fits `shape.channels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pixels: Pixels,
    labels: Vec<u32>,
    shape: ImageShape,
    classes: usize,
    normalization: Normalization,
}

impl Split {
    /// Assembles a split from checked parts (see the invariants above).
    pub(crate) fn new(
        pixels: Pixels,
        labels: Vec<u32>,
        shape: ImageShape,
        classes: usize,
        normalization: Normalization,
    ) -> Split {
        debug_assert_eq!(pixels.len(), labels.len() * shape.len());
        debug_assert!(labels.iter().all(|&l| (l as usize) < classes));
        debug_assert!(normalization.fits_channels(shape.channels));
        Split {
            pixels,
            labels,
            shape,
            classes,
            normalization,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Labels, one per sample, each below [`Split::classes`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The raw sample values.
    pub fn pixels(&self) -> &Pixels {
        &self.pixels
    }

    /// Shape of one sample.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of classes of the data set (some may have no sample in this split).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How samples are standardized when batched.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// Samples per class, indexed by class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Indices of the samples of `class`, in data-set order.
    ///
    /// # Errors
    /// [`Error::ClassOutOfRange`] unless `class < classes`.
    pub fn class_indices(&self, class: usize) -> Result<Vec<usize>> {
        self.check_class(class)?;
        Ok(self
            .labels
            .iter()
            .enumerate()
            .filter(|&(_, &label)| label as usize == class)
            .map(|(i, _)| i)
            .collect())
    }

    /// A new split of the samples `indices`, in that order.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] for an index `>= len`.
    pub fn subset(&self, indices: &[usize]) -> Result<Split> {
        self.check_indices(indices)?;
        Ok(Split {
            pixels: self.pixels.gather(self.shape.len(), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone_meta()
        })
    }

    /// A split with this one's shape, classes and normalization but no samples.
    fn clone_meta(&self) -> Split {
        let pixels = match self.pixels {
            Pixels::U8(_) => Pixels::U8(Vec::new()),
            Pixels::F32(_) => Pixels::F32(Vec::new()),
        };
        Split {
            pixels,
            labels: Vec::new(),
            shape: self.shape,
            classes: self.classes,
            normalization: self.normalization.clone(),
        }
    }

    pub(crate) fn check_class(&self, class: usize) -> Result<()> {
        if class < self.classes {
            Ok(())
        } else {
            Err(Error::ClassOutOfRange {
                class,
                classes: self.classes,
            })
        }
    }

    pub(crate) fn check_indices(&self, indices: &[usize]) -> Result<()> {
        match indices.iter().find(|&&i| i >= self.len()) {
            Some(&index) => Err(Error::IndexOutOfRange {
                index,
                len: self.len(),
            }),
            None => Ok(()),
        }
    }
}

/// A loaded data set: the spec it came from, its train and test splits and class names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    spec: DatasetSpec,
    train: Split,
    test: Split,
    class_names: Vec<String>,
}

impl Dataset {
    /// Reads (or generates) the data set a spec names.
    ///
    /// # Errors
    /// Missing directories or files, unreadable or malformed files (each error names the
    /// file), and bad synthetic parameters.
    ///
    /// # Example
    /// ```
    /// use saddlescope_data::{Dataset, DatasetSpec};
    /// let spec: DatasetSpec = "synthetic:classes=3,dim=4,n=10,test=5,seed=1".parse()?;
    /// let data = Dataset::load(&spec)?;
    /// assert_eq!(data.train().class_counts(), vec![10, 10, 10]);
    /// assert_eq!(data.test().len(), 15);
    /// # Ok::<(), saddlescope_data::Error>(())
    /// ```
    pub fn load(spec: &DatasetSpec) -> Result<Dataset> {
        match spec {
            DatasetSpec::Mnist10k => crate::idx::load_embedded(spec.clone()),
            DatasetSpec::Mnist(dir) => crate::idx::load_dir(spec.clone(), dir),
            DatasetSpec::Cifar10(dir) => crate::cifar::load_cifar10(spec.clone(), dir),
            DatasetSpec::Cifar100(dir) => crate::cifar::load_cifar100(spec.clone(), dir),
            DatasetSpec::Synthetic(params) => Ok(crate::synthetic::generate(params)),
        }
    }

    /// Assembles a data set from checked splits of equal shape and classes.
    pub(crate) fn new(
        spec: DatasetSpec,
        train: Split,
        test: Split,
        class_names: Vec<String>,
    ) -> Dataset {
        debug_assert_eq!(train.shape, test.shape);
        debug_assert_eq!(train.classes, class_names.len());
        debug_assert_eq!(test.classes, class_names.len());
        Dataset {
            spec,
            train,
            test,
            class_names,
        }
    }

    /// The same data set with another train split (the long-tailed subset).
    pub(crate) fn with_train(self, train: Split) -> Dataset {
        Dataset { train, ..self }
    }

    /// The spec this data set was loaded from.
    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    /// The train split.
    pub fn train(&self) -> &Split {
        &self.train
    }

    /// The test split (never sub-sampled: evaluation stays balanced).
    pub fn test(&self) -> &Split {
        &self.test
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class names, indexed by class id (digits for MNIST, CIFAR's names, ids for synthetic).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Shape of one sample.
    pub fn shape(&self) -> ImageShape {
        self.train.shape
    }

    /// How samples are standardized when batched.
    pub fn normalization(&self) -> &Normalization {
        &self.train.normalization
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Split {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 2,
        };
        Split::new(
            Pixels::U8(vec![0, 1, 10, 11, 20, 21, 30, 31]),
            vec![1, 0, 1, 2],
            shape,
            3,
            Normalization::None,
        )
    }

    #[test]
    fn counts_indices_and_subsets() {
        let split = tiny();
        assert_eq!(split.class_counts(), vec![1, 2, 1]);
        assert_eq!(split.class_indices(1).unwrap(), vec![0, 2]);
        let err = split.class_indices(3).unwrap_err();
        assert_eq!(err.to_string(), "class 3 is out of range (3 classes)");
        let sub = split.subset(&[3, 0]).unwrap();
        assert_eq!(sub.labels(), &[2, 1]);
        assert_eq!(sub.pixels(), &Pixels::U8(vec![30, 31, 0, 1]));
        assert_eq!(sub.shape(), split.shape());
        let err = split.subset(&[0, 4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample 4 is out of range (the split has 4)"
        );
    }

    #[test]
    fn shape_displays_and_measures() {
        let shape = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        assert_eq!(shape.to_string(), "3x32x32");
        assert_eq!(shape.len(), 3072);
        assert_eq!(shape.dims(), [3, 32, 32]);
        assert!(!shape.is_empty());
    }
}
