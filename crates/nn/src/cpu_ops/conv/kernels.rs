//! The three convolution kernels on contiguous slices: forward, input gradient and weight
//! gradient, each as im2col/col2im around one GEMM per chunk of samples, chunks in
//! parallel. The forward and weight gradient of a stride-1 "same" convolution with enough
//! input channels go to [`rows`] instead (a `kw`-fold row expansion, `kh` GEMMs); the
//! input gradient of one is such a forward convolution.
//!
//! For one sample with `col = im2col(x): (C_in·kh·kw, Ho·Wo)` and the kernel viewed as
//! `K: (C_out, C_in·kh·kw)`:
//! - forward: `y = K · col`, `(C_out, Ho·Wo)`, already NCHW;
//! - input gradient of `⟨g, y⟩`: `dx = col2im(Kᵀ · g)` (col2im adds every column entry
//!   back onto the pixel it was read from);
//! - weight gradient: `dK = Σ_n g_n · col_nᵀ`.
//!
//! Parallel work is split by sample only (fixed chunks for the weight gradient, summed in
//! chunk order), and each GEMM runs single-threaded, so results are bit-identical for any
//! number of threads.

use std::mem::MaybeUninit;

use candle_core::{bail, Result, WithDType};
use rayon::prelude::*;

use super::rows;
use crate::cpu_ops::batch_norm::{Moments, Normalize};
use crate::cpu_ops::custom::{write_slice, PIECE_VALUES};
use crate::cpu_ops::gemm::{matmul, matmul_uninit, Mat, Threads};

/// Columns a GEMM should have at least: samples are batched side by side until the patch
/// matrix is this wide (the 8x8 images of ResNet's last stage would otherwise make skinny,
/// slow GEMMs).
const GEMM_COLUMNS: usize = 512;

/// Shapes of one convolution `y = conv(x, k)`: `x: (n, c_in, h, w)`,
/// `k: (c_out, c_in, kh, kw)`, `y: (n, c_out, ho, wo)`, zero padding and stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub padding: usize,
    pub stride: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Geometry {
    /// Checks the sizes and derives the output side lengths
    /// `(h + 2p − kh)/s + 1` (floor), as candle and PyTorch do.
    pub fn new(
        [n, c_in, h, w]: [usize; 4],
        [c_out, k_in, kh, kw]: [usize; 4],
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        if k_in != c_in {
            bail!("conv2d: kernel has {k_in} input channels, the input has {c_in}")
        }
        if stride == 0 {
            bail!("conv2d: stride 0")
        }
        if kh == 0 || kw == 0 || kh > h + 2 * padding || kw > w + 2 * padding {
            bail!("conv2d: kernel {kh}x{kw} does not fit the padded input {h}x{w} (padding {padding})")
        }
        Ok(Self {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            padding,
            stride,
            ho: (h + 2 * padding - kh) / stride + 1,
            wo: (w + 2 * padding - kw) / stride + 1,
        })
    }

    pub fn x_dims(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }

    pub fn k_dims(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.kh, self.kw]
    }

    pub fn y_dims(&self) -> [usize; 4] {
        [self.n, self.c_out, self.ho, self.wo]
    }

    /// Rows of the im2col matrix, `c_in·kh·kw`.
    pub(crate) fn patch(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Samples per GEMM: enough for [`GEMM_COLUMNS`] columns, at least 1. A function of the
    /// geometry only, so the order of every sum (and the rounding) does not depend on the
    /// number of threads.
    pub(crate) fn samples_per_gemm(&self) -> usize {
        GEMM_COLUMNS
            .div_ceil(self.pixels().max(1))
            .clamp(1, self.n.max(1))
    }

    /// The fewest chunks of [`samples_per_gemm`](Self::samples_per_gemm) samples a rayon
    /// piece holds (`with_min_len`): about two pieces per thread, so that every thread
    /// allocates its buffers about twice per call and a late thread still finds work. Rayon
    /// halves a range only while each half keeps this many, so the minimum is rounded
    /// down: rounded up, an odd number of chunks (e.g. 67) would never be split at all.
    /// Only the scheduling depends on the thread count, never a result.
    pub(crate) fn chunks_per_thread(&self) -> usize {
        let chunks = self.n.div_ceil(self.samples_per_gemm());
        (chunks / (2 * rayon::current_num_threads())).max(1)
    }

    /// Columns of the im2col matrix, `ho·wo`.
    pub(crate) fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    pub(crate) fn x_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    pub(crate) fn y_len(&self) -> usize {
        self.c_out * self.pixels()
    }

    /// Output columns `[lo, hi)` whose input column `ox·s + kj − p` lies inside `[0, w)`.
    pub(super) fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(kj).div_ceil(s);
        let hi = if self.w + p > kj {
            ((self.w + p - kj - 1) / s + 1).min(self.wo)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Calls `f(row, c, ki, kj, valid_cols(kj))` for every row of the patch matrix in
    /// order, `row = (c·kh + ki)·kw + kj`, in nested loops: deriving `(c, ki, kj)` from
    /// `row` took three integer divisions per row, a third of im2col's time on the 8x8
    /// planes of ResNet's last stage.
    fn for_patch_rows(&self, mut f: impl FnMut(usize, usize, usize, usize, (usize, usize))) {
        let valid: Vec<(usize, usize)> = (0..self.kw).map(|kj| self.valid_cols(kj)).collect();
        let mut row = 0;
        for c in 0..self.c_in {
            for ki in 0..self.kh {
                for (kj, &cols) in valid.iter().enumerate() {
                    f(row, c, ki, kj, cols);
                    row += 1;
                }
            }
        }
    }

    /// The input row `oy·s + ki − p` if it lies inside `[0, h)`.
    fn input_row(&self, oy: usize, ki: usize) -> Option<usize> {
        (oy * self.stride + ki)
            .checked_sub(self.padding)
            .filter(|&iy| iy < self.h)
    }
}

/// A convolution's input `(n, c_in, h, w)` read in place: one contiguous tensor, two
/// stacked along the channel axis (`[ẋ, x]` of a tangent convolution), so the stacked
/// tensor is never materialized, or `relu(BN(y))` of a batch norm's input `y`, normalized
/// as it is read (the activation is never written).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Input<'a, T> {
    first: &'a [T],
    second: &'a [T],
    /// Channels per sample in `first`; the rest are in `second`.
    split: usize,
    /// Each channel's normalization, applied with a ReLU to every value read.
    normalize: Option<&'a [Normalize<T>]>,
}

impl<'a, T> Input<'a, T> {
    /// One contiguous tensor.
    pub fn single(x: &'a [T]) -> Self {
        Self {
            first: x,
            second: &[],
            split: usize::MAX,
            normalize: None,
        }
    }

    /// `relu(z)` of a batch norm's `z = (y − μ)·γ·r + β` per channel (`normalize`, as
    /// [`batch_norm::forward`](crate::cpu_ops::batch_norm::forward) applies it with
    /// [`Act::Relu`](crate::cpu_ops::batch_norm::Act)): the same values, read from `y`
    /// ([`Planes`]).
    pub fn relu_normalized(y: &'a [T], normalize: &'a [Normalize<T>]) -> Self {
        Self {
            normalize: Some(normalize),
            ..Self::single(y)
        }
    }

    /// `cat([a, b], axis 1)` for `a: (n, split, h, w)` and `b: (n, c_in − split, h, w)`.
    pub fn stacked(a: &'a [T], b: &'a [T], split: usize) -> Self {
        Self {
            first: a,
            second: b,
            split,
            normalize: None,
        }
    }

    /// Errors unless the parts hold exactly the values of `g`'s input.
    fn check(&self, g: &Geometry) -> Result<()> {
        if let Some(normalize) = self.normalize {
            check_len("normalization", normalize.len(), g.c_in)?;
        }
        let plane = g.h * g.w;
        let split = self.split.min(g.c_in);
        check_len("input", self.first.len(), g.n * split * plane)?;
        check_len(
            "stacked input",
            self.second.len(),
            g.n * (g.c_in - split) * plane,
        )
    }

    /// Channel `c` of sample `i` (an `h·w` plane).
    pub(super) fn plane(&self, g: &Geometry, i: usize, c: usize) -> &'a [T] {
        let plane = g.h * g.w;
        let split = self.split.min(g.c_in);
        let (part, channels, c) = if c < split {
            (self.first, split, c)
        } else {
            (self.second, g.c_in - split, c - split)
        };
        let start = (i * channels + c) * plane;
        &part[start..start + plane]
    }
}

/// The planes of an [`Input`] as its kernels read them: in place, or normalized once per
/// plane into scratch when the input reads through a normalization
/// ([`Input::relu_normalized`]), for the several copies (shifts) made of each plane.
pub(super) struct Planes<'i, 'a, T> {
    x: &'i Input<'a, T>,
    normalized: Vec<T>,
    /// `(sample, channel)` of the plane in `normalized`.
    current: Option<(usize, usize)>,
}

impl<'i, 'a, T: WithDType> Planes<'i, 'a, T> {
    /// The planes of `x`, none normalized yet.
    pub fn new(x: &'i Input<'a, T>) -> Self {
        Self {
            x,
            normalized: Vec::new(),
            current: None,
        }
    }

    /// Channel `c` of sample `i`.
    pub fn get(&mut self, g: &Geometry, i: usize, c: usize) -> &[T] {
        let plane = self.x.plane(g, i, c);
        let Some(normalize) = self.x.normalize else {
            return plane;
        };
        if self.current != Some((i, c)) {
            let k = normalize[c];
            self.normalized.clear();
            self.normalized.extend(plane.iter().map(|&v| k.relu_of(v)));
            self.current = Some((i, c));
        }
        &self.normalized
    }
}

/// `col[(c·kh + ki)·kw + kj, oy·wo + ox] = x[c, oy·s + ki − p, ox·s + kj − p]` (0 outside)
/// for one sample `x: (c_in, h, w)`; row `r` of the patch matrix starts at `col[r·ld]`
/// (`ld ≥ ho·wo`: several samples side by side in one matrix).
pub(crate) fn im2col<T: WithDType>(
    g: &Geometry,
    x: &Input<T>,
    sample: usize,
    col: &mut [T],
    ld: usize,
) {
    let zero = T::from_f64(0.0);
    let (s, p, wo) = (g.stride, g.padding, g.wo);
    let mut planes = Planes::new(x);
    g.for_patch_rows(|row, c, ki, kj, (lo, hi)| {
        let dst = &mut col[row * ld..row * ld + g.pixels()];
        let plane = planes.get(g, sample, c);
        if s == 1 && wo == g.w {
            shifted_plane(g, plane, dst, (ki, kj), (lo, hi));
            return;
        }
        for (oy, out) in dst.chunks_exact_mut(wo).enumerate() {
            let Some(iy) = g.input_row(oy, ki) else {
                out.fill(zero);
                continue;
            };
            let src = &plane[iy * g.w..(iy + 1) * g.w];
            if lo < hi {
                let first = lo * s + kj - p;
                if s == 1 {
                    out[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                } else {
                    for (o, i) in out[lo..hi].iter_mut().zip(src[first..].iter().step_by(s)) {
                        *o = *i;
                    }
                }
            }
        }
        zero_edges(dst, wo, (lo, hi));
    });
}

/// Zeroes columns `[0, lo)` and `[hi, w)` of every row of `rows` (rows of `w` values),
/// column by column: a one-value fill per row was a `memset` call per row (~2% of a
/// training step in call overhead).
fn zero_edges<T: WithDType>(rows: &mut [T], w: usize, (lo, hi): (usize, usize)) {
    let zero = T::from_f64(0.0);
    for col in (0..lo.min(w)).chain(hi.min(w)..w) {
        for v in rows[col..].iter_mut().step_by(w) {
            *v = zero;
        }
    }
}

/// One im2col row of a stride-1 convolution whose output rows are as wide as the input's
/// (`wo = w`, e.g. a "same" 3x3): the row is the input plane shifted by
/// `(ki − p)·w + kj − p` entries, so it is one contiguous copy, then the entries that
/// wrapped around a row edge (columns outside `[lo, hi)`) or fell outside the plane are
/// zeroed. Row-by-row copies of ~32 values cost more in call overhead than in bytes.
pub(super) fn shifted_plane<T: WithDType>(
    g: &Geometry,
    plane: &[T],
    dst: &mut [T],
    (ki, kj): (usize, usize),
    (lo, hi): (usize, usize),
) {
    let zero = T::from_f64(0.0);
    let (w, p) = (g.w, g.padding);
    let offset = (ki * w + kj) as isize - (p * w + p) as isize;
    let start = ((-offset).max(0) as usize).min(dst.len());
    let end = ((plane.len() as isize - offset).max(0) as usize).clamp(start, dst.len());
    if start < end {
        let from = (start as isize + offset) as usize;
        dst[start..end].copy_from_slice(&plane[from..from + end - start]);
    }
    dst[..start].fill(zero);
    dst[end..].fill(zero);
    zero_edges(dst, w, (lo, hi));
}

/// The adjoint of [`im2col`]: `x[c, iy, ix] += col[...]` for every entry read from it;
/// `x` must start at zero.
pub(crate) fn col2im<T: WithDType>(g: &Geometry, col: &[T], ld: usize, x: &mut [T]) {
    let (s, p, wo) = (g.stride, g.padding, g.wo);
    g.for_patch_rows(|row, c, ki, kj, (lo, hi)| {
        if lo >= hi {
            return;
        }
        let src = &col[row * ld..row * ld + g.pixels()];
        let first = lo * s + kj - p;
        let plane = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for (oy, values) in src.chunks_exact(wo).enumerate() {
            let Some(iy) = g.input_row(oy, ki) else {
                continue;
            };
            let dst = &mut plane[iy * g.w + first..(iy + 1) * g.w];
            for (d, v) in dst.iter_mut().step_by(s).zip(&values[lo..hi]) {
                *d += *v;
            }
        }
    });
}

/// `m` samples of `(rows, pixels)` blocks, `src[j][r][p]`, laid side by side as one
/// `(rows, m·pixels)` matrix `dst[r][j·pixels + p]` (or back, when `to_samples`).
pub(crate) fn interleave<T: Copy>(
    src: &[T],
    dst: &mut [T],
    rows: usize,
    pixels: usize,
    to_samples: bool,
) {
    interleave_with(src, dst, (rows, pixels), to_samples, <[T]>::copy_from_slice);
}

/// [`interleave`] into storage of any kind, `copy(dst_run, src_run)` writing each run of
/// `pixels` values (uninitialized storage included: every entry of `dst` is written).
fn interleave_with<T: Copy, D>(
    src: &[T],
    dst: &mut [D],
    (rows, pixels): (usize, usize),
    to_samples: bool,
    copy: impl Fn(&mut [D], &[T]),
) {
    let m = src.len() / (rows * pixels).max(1);
    for j in 0..m {
        for r in 0..rows {
            let sample = j * rows * pixels + r * pixels;
            let wide = r * m * pixels + j * pixels;
            if to_samples {
                copy(&mut dst[sample..sample + pixels], &src[wide..wide + pixels]);
            } else {
                copy(&mut dst[wide..wide + pixels], &src[sample..sample + pixels]);
            }
        }
    }
}

fn check_len(what: &str, len: usize, expected: usize) -> Result<()> {
    if len != expected {
        bail!("conv2d: {what} holds {len} values, expected {expected}")
    }
    Ok(())
}

/// Scratch of one task for chunks of `nb` samples: a patch matrix (or [`rows`]'
/// expansion, which needs less) and a GEMM output of the chunk's width.
fn scratch<T: WithDType>(g: &Geometry, nb: usize) -> (Vec<T>, Vec<T>) {
    let zero = T::from_f64(0.0);
    let (col, wide) = if rows::applies(g) {
        (rows::expansion_len(g, nb), rows::stacked_len(g, nb))
    } else {
        (g.patch() * nb * g.pixels(), nb * g.y_len())
    };
    (vec![zero; col], vec![zero; wide])
}

/// `y = conv(x, k) + b` for an input `x: (n, c_in, h, w)`, a contiguous kernel
/// `k: (c_out, c_in, kh, kw)` and an optional per-output-channel shift `b: (c_out,)` (folded
/// into the GEMM: the output starts as `b` and the product is accumulated onto it, so the
/// sum costs no pass of its own).
pub(crate) fn forward<T: WithDType>(
    g: &Geometry,
    x: Input<T>,
    k: &[T],
    shift: Option<&[T]>,
) -> Result<Vec<T>> {
    Ok(forward_chunks(g, x, (k, shift), |_, _| ())?.0)
}

/// `y = conv(x, k)` and the [`Moments`] of each output channel, taken from each chunk of
/// samples while it is in cache and merged in chunk order (the batch statistics of a batch
/// norm that follows, without reading `y` again).
pub(crate) fn forward_moments<T: WithDType>(
    g: &Geometry,
    x: Input<T>,
    k: &[T],
) -> Result<(Vec<T>, Vec<Moments>)> {
    let (y, parts) = forward_chunks(g, x, (k, None), |_, y_c| {
        Moments::per_channel(y_c, g.c_out, g.pixels())
    })?;
    Ok((y, Moments::merge_all(&parts, g.c_out)))
}

/// [`forward`] chunk by chunk, each chunk's output (`(m, c_out, ho·wo)`, at `start` in `y`)
/// passed to `finish(start, chunk)` while it is in cache, which may change it and returns
/// a summary; the summaries in chunk order.
fn forward_chunks<T: WithDType, R: Send>(
    g: &Geometry,
    x: Input<T>,
    (k, shift): (&[T], Option<&[T]>),
    finish: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Result<(Vec<T>, Vec<R>)> {
    x.check(g)?;
    check_len("kernel", k.len(), g.c_out * g.patch())?;
    if let Some(b) = shift {
        check_len("shift", b.len(), g.c_out)?;
    }
    let nb = g.samples_per_gemm();
    let len = g.n * g.y_len();
    // The output is written once, by the GEMM or by copies, never zero-filled first (the
    // fill was ~3% of a CNN training step).
    let mut y = Vec::with_capacity(len);
    let kernel = Mat::row_major(k, g.c_out, g.patch());
    let taps = rows::applies(g).then(|| rows::kernel_rows(g, k));
    let chunk_len = (nb * g.y_len()).max(1);
    let summaries = y.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk_len)
        .enumerate()
        .with_min_len(g.chunks_per_thread())
        .map_init(
            || scratch(g, nb),
            |(col, wide), (chunk, y_c)| {
                match &taps {
                    Some(taps) => {
                        let input = (&x, chunk * nb);
                        rows::forward_chunk(g, input, (taps, shift), (col, wide), y_c)?;
                    }
                    None => im2col_chunk(g, (&x, chunk * nb), (kernel, shift), (col, wide), y_c)?,
                }
                // SAFETY: both kernels write every slot of `y_c` (`rows::forward_chunk` by
                // contract; `im2col_chunk` as noted at its end), so the slice is
                // initialized; `MaybeUninit<T>` has `T`'s layout.
                let y_c = unsafe {
                    std::slice::from_raw_parts_mut(y_c.as_mut_ptr().cast::<T>(), y_c.len())
                };
                Ok(finish(chunk * chunk_len, y_c))
            },
        )
        .collect::<Result<Vec<R>>>()?;
    // SAFETY: every chunk of the `len` slots was written in full (see the note above).
    unsafe { y.set_len(len) };
    Ok((y, summaries))
}

/// One chunk of [`forward`] by im2col and a GEMM: samples `first..` of `x` into `y_c`
/// (`m·c_out·ho·wo` slots, every one written).
fn im2col_chunk<T: WithDType>(
    g: &Geometry,
    (x, first): (&Input<T>, usize),
    (kernel, shift): (Mat<T>, Option<&[T]>),
    (col, wide): (&mut [T], &mut [T]),
    y_c: &mut [MaybeUninit<T>],
) -> Result<()> {
    let m = y_c.len() / g.y_len();
    let cols = m * g.pixels();
    for j in 0..m {
        im2col(g, x, first + j, &mut col[j * g.pixels()..], cols);
    }
    let col = Mat::row_major(&col[..g.patch() * cols], g.patch(), cols);
    match (m, shift) {
        (1, None) => matmul_uninit(y_c, kernel, col, Threads::One)?,
        (1, Some(b)) => {
            for (row, &value) in y_c.chunks_exact_mut(cols).zip(b) {
                for slot in row {
                    slot.write(value);
                }
            }
            // SAFETY: the `c_out` rows of `cols` values that make up `y_c`
            // (`m = 1`) were all just written with the shift, so the slice is
            // initialized; `MaybeUninit<T>` has `T`'s layout.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(y_c.as_mut_ptr().cast::<T>(), y_c.len()) };
            matmul(dst, (cols, 1), kernel, col, true, Threads::One)?;
        }
        _ => {
            let dst = &mut wide[..y_c.len()];
            if let Some(b) = shift {
                for (row, &value) in dst.chunks_exact_mut(cols).zip(b) {
                    row.fill(value);
                }
            }
            matmul(dst, (cols, 1), kernel, col, shift.is_some(), Threads::One)?;
            interleave_with(dst, y_c, (g.c_out, g.pixels()), true, write_slice);
        }
    }
    // Every slot of `y_c` is written: by the GEMM (`matmul_uninit` writes all
    // `c_out × cols` entries of a one-sample chunk), by the shift fill before an
    // accumulating GEMM, or by `interleave_with`, which writes all `m · c_out · pixels`
    // entries of a chunk of `m` samples.
    Ok(())
}

/// `dx = ∂⟨dy, conv(x, k)⟩/∂x` for contiguous `dy: (n, c_out, ho, wo)` and `k`
/// (the transposed convolution of `dy` by `k`).
///
/// With stride 1 and a square kernel this is a forward convolution of `dy` by the flipped
/// kernel with swapped channels, `k'[c, o, i, j] = k[o, c, kh−1−i, kw−1−j]`, padding
/// `kh − 1 − p`: its GEMM has inner dimension `c_out·kh·kw` instead of `c_out` (3-4x faster
/// here). Otherwise `col = kᵀ · dy`, then col2im.
pub(crate) fn input_grad<T: WithDType>(g: &Geometry, dy: &[T], k: &[T]) -> Result<Vec<T>> {
    input_grad_plus(g, dy, k, None)
}

/// [`input_grad`] plus `addend` (of the input's shape, e.g. a residual's other gradient),
/// added to each chunk of samples while it is in cache: the values of adding afterwards,
/// without a pass of its own.
fn input_grad_plus<T: WithDType>(
    g: &Geometry,
    dy: &[T],
    k: &[T],
    addend: Option<&[T]>,
) -> Result<Vec<T>> {
    check_len("output gradient", dy.len(), g.n * g.y_len())?;
    check_len("kernel", k.len(), g.c_out * g.patch())?;
    if let Some(a) = addend {
        check_len("addend", a.len(), g.n * g.x_len())?;
    }
    let add = |start: usize, dx_c: &mut [T]| {
        if let Some(a) = addend {
            let values = &a[start..start + dx_c.len()];
            for (d, &v) in dx_c.iter_mut().zip(values) {
                *d += v;
            }
        }
    };
    if g.stride == 1 && g.kh == g.kw && g.padding < g.kh {
        let flipped = Geometry::new(
            g.y_dims(),
            [g.c_in, g.c_out, g.kh, g.kw],
            g.kh - 1 - g.padding,
            1,
        )?;
        let mut k_flip = Vec::with_capacity(k.len());
        for c in 0..g.c_in {
            for o in 0..g.c_out {
                let base = (o * g.c_in + c) * g.kh * g.kw;
                k_flip.extend(k[base..base + g.kh * g.kw].iter().rev());
            }
        }
        return Ok(forward_chunks(&flipped, Input::single(dy), (&k_flip, None), add)?.0);
    }
    let nb = g.samples_per_gemm();
    let zero = T::from_f64(0.0);
    let mut dx = vec![zero; g.n * g.x_len()];
    let kernel_t = Mat::row_major(k, g.c_out, g.patch()).t();
    let chunk_len = (nb * g.x_len()).max(1);
    dx.par_chunks_mut(chunk_len)
        .zip(dy.par_chunks((nb * g.y_len()).max(1)))
        .enumerate()
        .with_min_len(g.chunks_per_thread())
        .try_for_each_init(
            || {
                (
                    vec![zero; g.patch() * nb * g.pixels()],
                    vec![zero; nb * g.y_len()],
                )
            },
            |(col, wide), (chunk, (dx_c, dy_c))| {
                let m = dy_c.len() / g.y_len();
                let cols = m * g.pixels();
                interleave(dy_c, wide, g.c_out, g.pixels(), false);
                let dy_wide = Mat::row_major(&wide[..dy_c.len()], g.c_out, cols);
                matmul(
                    &mut col[..g.patch() * cols],
                    (cols, 1),
                    kernel_t,
                    dy_wide,
                    false,
                    Threads::One,
                )?;
                for (j, dx_n) in dx_c.chunks_exact_mut(g.x_len()).enumerate() {
                    col2im(g, &col[j * g.pixels()..], cols, dx_n);
                }
                add(chunk * chunk_len, dx_c);
                Ok::<(), candle_core::Error>(())
            },
        )?;
    Ok(dx)
}

/// `dk = ∂⟨dy, conv(x, k)⟩/∂k = Σ_n dy_n · im2col(x_n)ᵀ` for an input `x` and a contiguous
/// `dy`: one GEMM per chunk of samples (fixed by the geometry), partial sums added in chunk
/// order.
pub(crate) fn weight_grad<T: WithDType>(g: &Geometry, x: Input<T>, dy: &[T]) -> Result<Vec<T>> {
    x.check(g)?;
    check_len("output gradient", dy.len(), g.n * g.y_len())?;
    let nb = g.samples_per_gemm();
    let zero = T::from_f64(0.0);
    let size = g.c_out * g.patch();
    let by_rows = rows::applies(g);
    let partials: Vec<Vec<T>> = dy
        .par_chunks((nb * g.y_len()).max(1))
        .enumerate()
        .with_min_len(g.chunks_per_thread())
        .map_init(
            || (scratch(g, nb), vec![zero; g.c_out * g.c_in * g.kw]),
            |((col, wide), part), (chunk, dy_c)| {
                if by_rows {
                    let mut dk_t = vec![zero; size];
                    let input = (&x, chunk * nb);
                    rows::weight_grad_chunk(g, input, dy_c, (col, wide, part), &mut dk_t)?;
                    return Ok(dk_t);
                }
                let m = dy_c.len() / g.y_len();
                let cols = m * g.pixels();
                for j in 0..m {
                    im2col(g, &x, chunk * nb + j, &mut col[j * g.pixels()..], cols);
                }
                interleave(dy_c, wide, g.c_out, g.pixels(), false);
                let dy_wide = Mat::row_major(&wide[..dy_c.len()], g.c_out, cols);
                let col_t = Mat::row_major(&col[..g.patch() * cols], g.patch(), cols).t();
                // dk is stored column-major (dkᵀ row-major), the orientation gemm's kernels
                // write natively: 1.5-1.8x faster than row-major here.
                let mut dk_t = vec![zero; size];
                matmul(&mut dk_t, (1, g.c_out), dy_wide, col_t, false, Threads::One)?;
                Ok(dk_t)
            },
        )
        .collect::<Result<_>>()?;
    // Each entry sums the chunks in chunk order, whatever the split into pieces.
    let mut total_t = vec![zero; size];
    let piece = PIECE_VALUES / partials.len().max(1) + 1;
    total_t
        .par_chunks_mut(piece)
        .enumerate()
        .for_each(|(i, total)| {
            let range = i * piece..i * piece + total.len();
            let mut parts = partials.iter().map(|p| &p[range.clone()]);
            if let Some(first) = parts.next() {
                total.copy_from_slice(first);
            }
            for part in parts {
                for (t, &p) in total.iter_mut().zip(part) {
                    *t += p;
                }
            }
        });
    // With one pixel per "sample", un-interleaving is the transpose dkᵀ → dk.
    let mut dk = vec![zero; size];
    interleave(&total_t, &mut dk, g.patch(), 1, true);
    Ok(dk)
}

/// `(dk, dx)`: [`weight_grad`] and, when `input_grad`, [`input_grad`] (plus `addend`, if
/// any: see [`input_grad_plus`]) side by side, so that the last pieces of one overlap the
/// other's rather than each waiting at its own end.
pub(crate) fn gradients<T: WithDType>(
    g: &Geometry,
    x: Input<T>,
    dy: &[T],
    k: &[T],
    (input_grad, addend): (bool, Option<&[T]>),
) -> Result<(Vec<T>, Option<Vec<T>>)> {
    let (dk, dx) = rayon::join(
        || weight_grad(g, x, dy),
        || {
            let dx = || input_grad_plus(g, dy, k, addend);
            input_grad.then(dx).transpose()
        },
    );
    Ok((dk?, dx?))
}

/// `cat([a, b], axis 1)` for contiguous `a: (n, c_a, …)` and `b: (n, c_b, …)` with `n`
/// leading blocks: each block of `a` followed by the matching block of `b`.
pub(crate) fn concat_blocks<T: Copy>(a: &[T], b: &[T], n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (la, lb) = (a.len() / n.max(1), b.len() / n.max(1));
    for i in 0..n {
        out.extend_from_slice(&a[i * la..(i + 1) * la]);
        out.extend_from_slice(&b[i * lb..(i + 1) * lb]);
    }
    out
}
