//! A checked wrapper around the `gemm` crate's matrix product (the GEMM candle itself
//! uses on the CPU), shared by the convolution and matrix-product custom ops.

use std::mem::MaybeUninit;

use candle_core::{bail, Result, WithDType};
use gemm::{gemm, Parallelism};

/// Products with fewer multiply-adds than this (~0.1 ms of one core) run on one thread:
/// handing half to a sleeping worker costs more than it gains.
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 24;

/// Whether work of `macs` multiply-adds is worth splitting across rayon's threads.
pub(crate) fn worth_splitting(macs: usize) -> bool {
    macs >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1
}

/// A strided matrix view: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// Whether a `rows × cols` matrix with strides `(rs, cs)` lies inside `len` elements.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// How a product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Always on the calling thread (inside an already parallel loop).
    One,
    /// On rayon's pool when the product is large.
    Pool,
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` when `accumulate`), `dst` an
/// `lhs.rows × rhs.cols` matrix with strides `(dst_rs, dst_cs)`.
///
/// gemm splits only the output among threads, so every entry is summed in the same order
/// whatever the thread count. Errors (never undefined behaviour) if a matrix does not fit
/// its slice.
pub(crate) fn matmul<T: WithDType>(
    dst: &mut [T],
    (dst_rs, dst_cs): (usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    threads: Threads,
) -> Result<()> {
    let (m, n) = (lhs.rows, rhs.cols);
    check(lhs, rhs)?;
    if !fits(dst.len(), m, n, dst_rs, dst_cs) {
        bail!("internal GEMM output of {m}x{n} does not fit its buffer")
    }
    if lhs.cols == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = T::from_f64(0.0);
                }
            }
        }
        return Ok(());
    }
    // SAFETY: the three matrices were checked to lie inside their slices; `dst` is borrowed
    // mutably and so aliases neither input.
    unsafe {
        run(
            dst.as_mut_ptr(),
            (dst_rs, dst_cs),
            lhs,
            rhs,
            accumulate,
            threads,
        )
    };
    Ok(())
}

/// `lhs · rhs` as a new row-major `lhs.rows × rhs.cols` matrix, written once by the GEMM
/// (not zero-filled first: for an MLP's weight gradient the fill was 5% of the backward
/// pass).
pub(crate) fn matmul_new<T: WithDType>(
    lhs: Mat<T>,
    rhs: Mat<T>,
    threads: Threads,
) -> Result<Vec<T>> {
    let len = lhs.rows * rhs.cols;
    let mut out = Vec::with_capacity(len);
    matmul_uninit(&mut out.spare_capacity_mut()[..len], lhs, rhs, threads)?;
    // SAFETY: `matmul_uninit` wrote all `len` entries.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// `dst = lhs · rhs` into uninitialized row-major storage of exactly
/// `lhs.rows × rhs.cols` entries, every one of which it writes.
pub(crate) fn matmul_uninit<T: WithDType>(
    dst: &mut [MaybeUninit<T>],
    lhs: Mat<T>,
    rhs: Mat<T>,
    threads: Threads,
) -> Result<()> {
    let (m, n) = (lhs.rows, rhs.cols);
    check(lhs, rhs)?;
    if dst.len() != m * n {
        bail!("internal GEMM output of {m}x{n} into {} entries", dst.len())
    }
    if lhs.cols == 0 {
        for slot in dst.iter_mut() {
            slot.write(T::from_f64(0.0));
        }
        return Ok(());
    }
    // SAFETY: the inputs were checked to lie inside their slices, and `dst` holds exactly
    // the m·n row-major output and aliases neither input (it is borrowed mutably). gemm
    // does not read `dst` when `accumulate` is false and writes every one of its entries
    // (k ≥ 1).
    unsafe {
        run(
            dst.as_mut_ptr().cast::<T>(),
            (n, 1),
            lhs,
            rhs,
            false,
            threads,
        )
    };
    Ok(())
}

/// Errors unless `lhs · rhs` is defined and both matrices lie inside their slices.
fn check<T>(lhs: Mat<T>, rhs: Mat<T>) -> Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k
        || !fits(lhs.data.len(), m, k, lhs.rs, lhs.cs)
        || !fits(rhs.data.len(), k, n, rhs.rs, rhs.cs)
    {
        bail!(
            "internal GEMM of ({m}x{k})·({}x{n}) does not fit its buffers",
            rhs.rows
        )
    }
    Ok(())
}

/// The GEMM itself.
///
/// # Safety
/// `lhs` and `rhs` lie inside their slices ([`check`]); `dst` points to room for an
/// `lhs.rows × rhs.cols` matrix with strides `(dst_rs, dst_cs)` that aliases neither
/// input (initialized when `accumulate`); `lhs.cols ≥ 1`. T is f32 or f64 (the only dtypes
/// the custom ops accept), which gemm supports.
unsafe fn run<T: WithDType>(
    dst: *mut T,
    (dst_rs, dst_cs): (usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match threads {
        Threads::Pool if worth_splitting(m * n * k) => {
            Parallelism::Rayon(rayon::current_num_threads())
        }
        _ => Parallelism::None,
    };
    gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs.data.as_ptr(),
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.data.as_ptr(),
        rhs.cs as isize,
        rhs.rs as isize,
        T::from_f64(1.0),
        T::from_f64(1.0),
        false,
        false,
        false,
        parallelism,
    );
}
