//! Mini-batches as candle tensors: images `(N, C, H, W)` in a requested dtype on a requested
//! device, normalized per channel (and augmented when asked), and labels `(N,)` u32.
//! Batches are built on the host from the compact split and moved once; the last batch is
//! kept even when short (no `drop_last`), so every sample is seen once per pass.

use candle_core::{DType, Device, Tensor, WithDType};

use crate::augment::{Augmenter, CropFlip};
use crate::dataset::{ImageShape, Pixels, Split};
use crate::error::{Error, Result};
use crate::normalize::Normalization;
use crate::rng::{self, Purpose};

/// The `(seed, epoch)` pair that keys a shuffle or an augmentation, so that epoch `e` of a
/// resumed run sees exactly what epoch `e` of an uninterrupted run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSeed {
    /// Run seed.
    pub seed: u64,
    /// Epoch number (only its low 56 bits matter).
    pub epoch: u64,
}

/// How to batch a split.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    /// Samples per batch (the last batch may be shorter), at least 1.
    pub batch_size: usize,
    /// Image dtype: F32 and F64 are built directly (values computed in f64); others are
    /// converted from F32.
    pub dtype: DType,
    /// Where the tensors go.
    pub device: Device,
    /// Seeded per-epoch shuffle of the sample order; `None` keeps the given order.
    pub shuffle: Option<EpochSeed>,
    /// Seeded per-epoch crop + flip (see `augment.rs`); `None` for none.
    pub augment: Option<EpochSeed>,
}

impl BatchSpec {
    /// F32 batches of `batch_size` in data-set order, not augmented.
    pub fn new(batch_size: usize, device: Device) -> BatchSpec {
        BatchSpec {
            batch_size,
            dtype: DType::F32,
            device,
            shuffle: None,
            augment: None,
        }
    }

    /// The same with another image dtype.
    pub fn with_dtype(self, dtype: DType) -> BatchSpec {
        BatchSpec { dtype, ..self }
    }

    /// The same with the order shuffled for `(seed, epoch)`.
    pub fn shuffled(self, seed: u64, epoch: u64) -> BatchSpec {
        BatchSpec {
            shuffle: Some(EpochSeed { seed, epoch }),
            ..self
        }
    }

    /// The same with crop + flip augmentation for `(seed, epoch)`.
    pub fn augmented(self, seed: u64, epoch: u64) -> BatchSpec {
        BatchSpec {
            augment: Some(EpochSeed { seed, epoch }),
            ..self
        }
    }
}

/// An iterator over the batches of (part of) a split: `Result<(images, labels)>`.
#[derive(Debug)]
pub struct Batches<'a> {
    split: &'a Split,
    order: Vec<usize>,
    next: usize,
    spec: BatchSpec,
    augmenter: Option<Augmenter>,
}

impl Split {
    /// All samples, in data-set order (or shuffled per `spec.shuffle`).
    ///
    /// # Errors
    /// [`Error::ZeroBatchSize`].
    ///
    /// # Example
    /// ```
    /// use candle_core::Device;
    /// use saddlescope_data::{BatchSpec, Dataset};
    /// let data = Dataset::load(&"synthetic:classes=2,dim=3,n=5".parse()?)?;
    /// let sizes: Vec<Vec<usize>> = data
    ///     .train()
    ///     .batches(&BatchSpec::new(4, Device::Cpu))?
    ///     .map(|b| b.map(|(x, _)| x.dims().to_vec()))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(sizes, [vec![4, 1, 1, 3], vec![4, 1, 1, 3], vec![2, 1, 1, 3]]);
    /// # Ok::<(), saddlescope_data::Error>(())
    /// ```
    pub fn batches(&self, spec: &BatchSpec) -> Result<Batches<'_>> {
        self.batches_of((0..self.len()).collect(), spec)
    }

    /// The samples of one class in data-set order, only the first `limit` when given (the
    /// per-class operators of the class-wise Hessian analysis need exactly these).
    ///
    /// # Errors
    /// [`Error::ClassOutOfRange`], [`Error::ZeroBatchSize`].
    pub fn class_batches(
        &self,
        class: usize,
        limit: Option<usize>,
        spec: &BatchSpec,
    ) -> Result<Batches<'_>> {
        let mut indices = self.class_indices(class)?;
        if let Some(limit) = limit {
            indices.truncate(limit);
        }
        self.batches_of(indices, spec)
    }

    /// The samples `indices`, in that order (or shuffled per `spec.shuffle`).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`], [`Error::ZeroBatchSize`].
    pub fn batches_of(&self, mut indices: Vec<usize>, spec: &BatchSpec) -> Result<Batches<'_>> {
        if spec.batch_size == 0 {
            return Err(Error::ZeroBatchSize);
        }
        self.check_indices(&indices)?;
        if let Some(EpochSeed { seed, epoch }) = spec.shuffle {
            rng::shuffle(
                &mut rng::stream(seed, Purpose::Shuffle, epoch),
                &mut indices,
            );
        }
        Ok(Batches {
            split: self,
            order: indices,
            next: 0,
            spec: spec.clone(),
            augmenter: spec.augment.map(|e| Augmenter::new(e.seed, e.epoch)),
        })
    }
}

impl Batches<'_> {
    /// Sample indices (into the split) of all batches, in batch order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    fn images(&mut self, indices: &[usize]) -> Result<Tensor> {
        match self.spec.dtype {
            DType::F64 => self.images_as::<f64>(indices),
            DType::F32 => self.images_as::<f32>(indices),
            other => Ok(self.images_as::<f32>(indices)?.to_dtype(other)?),
        }
    }

    fn images_as<T: WithDType>(&mut self, indices: &[usize]) -> Result<Tensor> {
        let shape = self.split.shape();
        let len = shape.len();
        let norm = self.split.normalization();
        let mut out: Vec<T> = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            let crop = self.augmenter.as_mut().map(|a| a.draw(i));
            match self.split.pixels() {
                Pixels::U8(p) => {
                    let unit = |v: u8| f64::from(v) / 255.0;
                    write_sample(
                        &p[i * len..(i + 1) * len],
                        unit,
                        shape,
                        crop,
                        norm,
                        &mut out,
                    )
                }
                Pixels::F32(p) => {
                    let unit = f64::from;
                    write_sample(
                        &p[i * len..(i + 1) * len],
                        unit,
                        shape,
                        crop,
                        norm,
                        &mut out,
                    )
                }
            }
        }
        let dims = (indices.len(), shape.channels, shape.height, shape.width);
        Ok(Tensor::from_vec(out, dims, &self.spec.device)?)
    }
}

/// Appends one sample, normalized and (when `crop` is given) cropped and flipped; padding is
/// the raw value 0 of the pixel type, normalized like any pixel.
fn write_sample<P: Copy + Default, T: WithDType>(
    sample: &[P],
    unit: impl Fn(P) -> f64,
    shape: ImageShape,
    crop: Option<CropFlip>,
    norm: &Normalization,
    out: &mut Vec<T>,
) {
    let (h, w) = (shape.height, shape.width);
    for c in 0..shape.channels {
        let plane = &sample[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let raw = match crop {
                    None => plane[y * w + x],
                    Some(crop) => match crop.source(y, x, h, w) {
                        Some((row, col)) => plane[row * w + col],
                        None => P::default(),
                    },
                };
                out.push(T::from_f64(norm.apply(c, unit(raw))));
            }
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.spec.batch_size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        let labels: Vec<u32> = indices.iter().map(|&i| self.split.labels()[i]).collect();
        let batch = self.images(&indices).and_then(|images| {
            let labels = Tensor::from_vec(labels, indices.len(), &self.spec.device)?;
            Ok((images, labels))
        });
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.spec.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    /// 5 samples of a 1x2x2 u8 image: sample i has pixels 10 i + (0, 1, 2, 3), label i % 2.
    fn tiny() -> Split {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let pixels = (0..5u8)
            .flat_map(|i| (0..4).map(move |j| 10 * i + j))
            .collect();
        let labels = (0..5).map(|i| i % 2).collect();
        Split::new(Pixels::U8(pixels), labels, shape, 2, Normalization::mnist())
    }

    fn collect(batches: Batches<'_>) -> Vec<(Tensor, Tensor)> {
        batches.collect::<Result<Vec<_>>>().unwrap()
    }

    fn flat_f64(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    }

    #[test]
    fn batches_are_normalized_exactly_and_keep_the_short_tail() {
        let split = tiny();
        let spec = BatchSpec::new(2, Device::Cpu).with_dtype(DType::F64);
        let batches = split.batches(&spec).unwrap();
        assert_eq!(batches.len(), 3);
        let got = collect(batches);
        assert_eq!(got[0].0.dims(), [2, 1, 2, 2]);
        assert_eq!(got[2].0.dims(), [1, 1, 2, 2]);
        assert_eq!(got[2].1.to_vec1::<u32>().unwrap(), [0]);
        assert_eq!(got[0].1.dtype(), DType::U32);
        // (p / 255 - 0.1307) / 0.3081 computed in f64, bit for bit.
        let expected: Vec<f64> = [0u8, 1, 2, 3, 10, 11, 12, 13]
            .iter()
            .map(|&p| (f64::from(p) / 255.0 - 0.1307) / 0.3081)
            .collect();
        assert_eq!(flat_f64(&got[0].0), expected);
        // F32 is the f64 value rounded once.
        let f32_batch = collect(split.batches(&BatchSpec::new(2, Device::Cpu)).unwrap());
        let as_f32: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        assert_eq!(
            f32_batch[0]
                .0
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            as_f32
        );
        // Other dtypes are converted from F32.
        let bf16 = BatchSpec::new(5, Device::Cpu).with_dtype(DType::BF16);
        assert_eq!(
            collect(split.batches(&bf16).unwrap())[0].0.dtype(),
            DType::BF16
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_per_epoch() {
        let data =
            Dataset::load(&"synthetic:classes=3,dim=2,n=20,test=1".parse().unwrap()).unwrap();
        let split = data.train();
        let spec = BatchSpec::new(7, Device::Cpu);
        let order = |seed, epoch| {
            split
                .batches(&spec.clone().shuffled(seed, epoch))
                .unwrap()
                .order()
                .to_vec()
        };
        let a = order(0, 0);
        assert_eq!(a, order(0, 0));
        assert_ne!(a, order(0, 1));
        assert_ne!(a, order(1, 0));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..60).collect::<Vec<_>>());
        // Labels follow the shuffled order.
        let labels: Vec<u32> = collect(split.batches(&spec.clone().shuffled(0, 0)).unwrap())
            .iter()
            .flat_map(|(_, y)| y.to_vec1::<u32>().unwrap())
            .collect();
        let expected: Vec<u32> = a.iter().map(|&i| split.labels()[i]).collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn class_batches_take_the_first_samples_in_data_set_order() {
        let split = tiny();
        let spec = BatchSpec::new(10, Device::Cpu).with_dtype(DType::F64);
        let b = split.class_batches(0, Some(2), &spec).unwrap();
        assert_eq!(b.order(), &[0, 2]);
        let (x, y) = collect(b).remove(0);
        assert_eq!(y.to_vec1::<u32>().unwrap(), [0, 0]);
        let sample2 = (f64::from(20u8) / 255.0 - 0.1307) / 0.3081;
        assert_eq!(flat_f64(&x)[4], sample2);
        assert_eq!(
            split.class_batches(1, None, &spec).unwrap().order(),
            &[1, 3]
        );
        assert!(matches!(
            split.class_batches(2, None, &spec),
            Err(Error::ClassOutOfRange { .. })
        ));
        assert!(matches!(
            split.batches(&BatchSpec::new(0, Device::Cpu)),
            Err(Error::ZeroBatchSize)
        ));
        assert!(matches!(
            split.batches_of(vec![5], &spec),
            Err(Error::IndexOutOfRange { index: 5, len: 5 })
        ));
    }

    #[test]
    fn augmentation_is_seeded_keyed_by_sample_and_shape_preserving() {
        // 3x32x32 u8 images with distinct pixels, CIFAR-10 normalization.
        let shape = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let pixels = (0..6 * 3072).map(|i| (i % 251) as u8).collect();
        let split = Split::new(
            Pixels::U8(pixels),
            vec![0; 6],
            shape,
            1,
            Normalization::cifar10(),
        );
        let spec = BatchSpec::new(6, Device::Cpu).with_dtype(DType::F64);
        let run = |s: &BatchSpec| flat_f64(&collect(split.batches(s).unwrap())[0].0);
        let plain = run(&spec);
        let a = run(&spec.clone().augmented(3, 0));
        assert_eq!(a.len(), plain.len(), "shape preserved");
        assert_eq!(a, run(&spec.clone().augmented(3, 0)));
        assert_ne!(a, run(&spec.clone().augmented(3, 1)));
        assert_ne!(a, plain);
        // The same sample gets the same draw whatever the batch order and size.
        let shuffled_spec = BatchSpec::new(4, Device::Cpu)
            .with_dtype(DType::F64)
            .augmented(3, 0)
            .shuffled(8, 0);
        let batches = split.batches(&shuffled_spec).unwrap();
        let order = batches.order().to_vec();
        let values: Vec<f64> = collect(batches)
            .iter()
            .flat_map(|(x, _)| flat_f64(x))
            .collect();
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(
                values[k * 3072..(k + 1) * 3072],
                a[i * 3072..(i + 1) * 3072]
            );
        }
        // Every augmented value is a normalized pixel of the image or normalized padding 0.
        let mut draw = Augmenter::new(3, 0);
        for i in 0..6 {
            let crop = draw.draw(i);
            for c in 0..3 {
                for (y, x) in [(0, 0), (5, 30), (31, 17)] {
                    let raw = crop.source(y, x, 32, 32).map_or(0, |(r, col)| {
                        ((i * 3072 + c * 1024 + r * 32 + col) % 251) as u8
                    });
                    let want = Normalization::cifar10().apply(c, f64::from(raw) / 255.0);
                    assert_eq!(a[i * 3072 + c * 1024 + y * 32 + x], want);
                }
            }
        }
    }
}
