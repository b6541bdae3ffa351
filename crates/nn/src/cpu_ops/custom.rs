//! The boilerplate every CPU custom op shares, written once: dtype dispatch (f32 and f64
//! through one generic kernel), dense views of strided arguments, and gradients only for
//! tracked arguments.
//!
//! An op implements [`CpuOp<N>`] for its `N` arguments (1 to 3): a kernel generic over the
//! element type and, if it is differentiable, its backward pass. Wrapped in [`Cpu`], it is
//! a candle `CustomOp1/2/3`, applied with [`apply1`], [`apply2`] or [`apply3`].

use std::borrow::Cow;
use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor,
    WithDType,
};
use rayon::prelude::*;

/// One argument of a kernel: the storage of one dtype and the layout that views it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arg<'a, T> {
    data: &'a [T],
    layout: &'a Layout,
}

impl<'a, T: WithDType> Arg<'a, T> {
    /// The argument's shape.
    pub fn dims(&self) -> &'a [usize] {
        self.layout.dims()
    }

    /// The underlying storage (all of it; [`layout`](Self::layout) says which part).
    pub fn storage(&self) -> &'a [T] {
        self.data
    }

    /// The layout viewing the storage.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// The values in row-major order: borrowed when contiguous, else gathered through the
    /// strides (broadcasts, transposes).
    pub fn dense(&self) -> Result<Cow<'a, [T]>> {
        dense_values(self.data, self.layout)
    }
}

/// A CPU custom op of `N` arguments, all f32 or all f64, written once for both.
pub(crate) trait CpuOp<const N: usize>: Send + Sync + 'static {
    /// The op's name in candle's graph and in error messages.
    const NAME: &'static str;

    /// The result (row-major) and its shape, from the arguments.
    fn run<T: WithDType>(&self, args: [Arg<'_, T>; N]) -> Result<(Vec<T>, Shape)>;

    /// The gradient `∂⟨grad, op(args)⟩/∂args[i]` of every tracked argument (`None` for
    /// the others: see [`grad_if`]). The default: the op is not differentiable (only
    /// applied where nothing differentiates it, with candle's `apply_op*_no_bwd`).
    fn backward(
        &self,
        _args: [&Tensor; N],
        _out: &Tensor,
        _grad: &Tensor,
    ) -> Result<[Option<Tensor>; N]> {
        Err(Error::BackwardNotSupported { op: Self::NAME })
    }
}

/// `Some(gradient())` when `arg` is tracked, `None` (computing nothing) when it is a
/// constant: the input images and an HVP's directions never pay for a gradient.
pub(crate) fn grad_if(
    arg: &Tensor,
    gradient: impl FnOnce() -> Result<Tensor>,
) -> Result<Option<Tensor>> {
    arg.track_op().then(gradient).transpose()
}

/// A [`CpuOp`] as a candle custom op.
pub(crate) struct Cpu<O>(pub O);

/// `op(x)` as a tracked candle op.
pub(crate) fn apply1<O: CpuOp<1>>(op: O, x: &Tensor) -> Result<Tensor> {
    x.apply_op1(Cpu(op))
}

/// `op(a, b)` as a tracked candle op.
pub(crate) fn apply2<O: CpuOp<2>>(op: O, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.apply_op2(b, Cpu(op))
}

/// `op(a, b, c)` as a tracked candle op.
pub(crate) fn apply3<O: CpuOp<3>>(op: O, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    a.apply_op3(b, c, Cpu(op))
}

/// Runs `op` on storages that are all f32 or all f64.
fn forward<const N: usize, O: CpuOp<N>>(
    op: &O,
    args: [(&CpuStorage, &Layout); N],
) -> Result<(CpuStorage, Shape)> {
    fn typed<'a, T: WithDType, const N: usize>(
        args: &[(&'a CpuStorage, &'a Layout); N],
    ) -> Result<[Arg<'a, T>; N]> {
        let data = args
            .iter()
            .map(|(storage, _)| storage.as_slice::<T>())
            .collect::<Result<Vec<_>>>()?;
        Ok(std::array::from_fn(|i| Arg {
            data: data[i],
            layout: args[i].1,
        }))
    }
    let dtype = args[0].0.dtype();
    if args.iter().any(|(s, _)| s.dtype() != dtype) {
        let dtypes: Vec<_> = args.iter().map(|(s, _)| s.dtype()).collect();
        bail!(
            "{}: arguments of dtypes {dtypes:?}, expected all f32 or all f64",
            O::NAME
        )
    }
    Ok(match args[0].0 {
        CpuStorage::F32(_) => {
            let (values, shape) = op.run(typed::<f32, N>(&args)?)?;
            (CpuStorage::F32(values), shape)
        }
        CpuStorage::F64(_) => {
            let (values, shape) = op.run(typed::<f64, N>(&args)?)?;
            (CpuStorage::F64(values), shape)
        }
        other => bail!(
            "{}: dtype {:?}, expected f32 or f64",
            O::NAME,
            other.dtype()
        ),
    })
}

impl<O: CpuOp<1>> CustomOp1 for Cpu<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        forward(&self.0, [(s, l)])
    }

    fn bwd(&self, arg: &Tensor, out: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let [d] = self.0.backward([arg], out, grad)?;
        Ok(d)
    }
}

/// `impl CustomOpN for Cpu<O>` for `O: CpuOp<N>`: the arguments' storages go to
/// [`forward`], their gradients come from [`CpuOp::backward`] (candle's traits differ in
/// arity only).
macro_rules! custom_op {
    ($trait:ident, $n:literal, $(($storage:ident, $layout:ident, $arg:ident, $grad:ident)),+) => {
        impl<O: CpuOp<$n>> $trait for Cpu<O> {
            fn name(&self) -> &'static str {
                O::NAME
            }

            fn cpu_fwd(
                &self,
                $($storage: &CpuStorage, $layout: &Layout),+
            ) -> Result<(CpuStorage, Shape)> {
                forward(&self.0, [$(($storage, $layout)),+])
            }

            fn bwd(
                &self,
                $($arg: &Tensor,)+
                out: &Tensor,
                grad: &Tensor,
            ) -> Result<($(custom_op!(@gradient $grad)),+)> {
                let [$($grad),+] = self.0.backward([$($arg),+], out, grad)?;
                Ok(($($grad),+))
            }
        }
    };
    (@gradient $grad:ident) => { Option<Tensor> };
}

custom_op!(CustomOp2, 2, (s1, l1, a, da), (s2, l2, b, db));
custom_op!(
    CustomOp3,
    3,
    (s1, l1, a, da),
    (s2, l2, b, db),
    (s3, l3, c, dc)
);

/// The not yet written slots of one piece of an output, filled front to back.
pub(crate) struct Slots<'a, T> {
    slots: &'a mut [MaybeUninit<T>],
    written: usize,
}

impl<T: Copy> Slots<'_, T> {
    /// Writes `values` after those written so far (any beyond the piece's end are dropped).
    pub fn extend(&mut self, values: impl IntoIterator<Item = T>) {
        let mut count = 0;
        for (slot, value) in self.slots[self.written..].iter_mut().zip(values) {
            slot.write(value);
            count += 1;
        }
        self.written += count;
    }
}

/// `len` values computed in parallel pieces of `piece` values (the last one shorter), each
/// task with its own `scratch`, followed by the values `tail`.
///
/// `fill(piece index, slots, scratch)` writes its piece front to back. The output is never
/// zero-filled first: an output-sized memset before every elementwise pass cost 5-10% of
/// a training step. A piece left short is an error (a bug in `fill`), never uninitialized
/// memory.
pub(crate) fn par_collect<T: WithDType, S>(
    (len, piece): (usize, usize),
    tail: &[T],
    scratch: impl Fn() -> S + Sync + Send,
    fill: impl Fn(usize, &mut Slots<'_, T>, &mut S) + Sync + Send,
) -> Result<Vec<T>> {
    let piece = piece.max(1);
    let total = len + tail.len();
    let mut out = Vec::with_capacity(total);
    let (body, end) = out.spare_capacity_mut()[..total].split_at_mut(len);
    write_slice(end, tail);
    let short = body
        .par_chunks_mut(piece)
        .enumerate()
        .with_min_len(PIECE_VALUES.div_ceil(piece))
        .map_init(scratch, |scratch, (index, slots)| {
            let mut slots = Slots { slots, written: 0 };
            fill(index, &mut slots, scratch);
            slots.written < slots.slots.len()
        })
        .any(|short| short);
    if short {
        bail!("internal error: a custom op left part of its output unwritten")
    }
    // SAFETY: every piece of `body` was written in full (`Slots` writes front to back and
    // counts what it wrote; checked above) and `end` by `write_slice` (of `tail`, its
    // length), so all `total` slots are initialized.
    unsafe { out.set_len(total) };
    Ok(out)
}

/// Copies `src` into the uninitialized `dst` of the same length.
pub(crate) fn write_slice<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    for (slot, &value) in dst.iter_mut().zip(src) {
        slot.write(value);
    }
}

/// Values per parallel task of an elementwise pass: ~0.1 ms of work, enough to outweigh
/// the hand-off to another thread.
pub(crate) const PIECE_VALUES: usize = 1 << 15;

/// The values `layout` views in a CPU storage of element type `T`, in row-major order
/// (borrowed when contiguous): for code outside a custom op that reads a tensor's storage.
pub(crate) fn dense<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<Cow<'a, [T]>> {
    dense_values(storage.as_slice::<T>()?, layout)
}

/// The values `layout` views in `data`, in row-major order (borrowed when contiguous).
fn dense_values<'a, T: WithDType>(data: &'a [T], layout: &Layout) -> Result<Cow<'a, [T]>> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return match data.get(start..end) {
            Some(slice) => Ok(Cow::Borrowed(slice)),
            None => bail!("layout {layout:?} exceeds its storage"),
        };
    }
    let (dims, stride) = (layout.dims(), layout.stride());
    let count: usize = dims.iter().product();
    if count == 0 {
        return Ok(Cow::Owned(Vec::new()));
    }
    let last = layout.start_offset()
        + dims
            .iter()
            .zip(stride)
            .map(|(d, s)| (d - 1) * s)
            .sum::<usize>();
    if last >= data.len() {
        bail!("layout {layout:?} exceeds its storage")
    }
    let mut index = vec![0; dims.len()];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let offset: usize = index.iter().zip(stride).map(|(i, s)| i * s).sum();
        out.push(data[layout.start_offset() + offset]);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(Cow::Owned(out))
}
