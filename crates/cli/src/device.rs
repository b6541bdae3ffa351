//! `--device cpu|cuda`: where tensors live. CUDA needs the `cuda` cargo feature, which is off
//! by default because building it needs nvcc.

use candle_core::Device;

use crate::usage::usage;

/// The device named by a `--device` flag.
pub fn parse_device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => {
            Device::new_cuda(0).map_err(|e| anyhow::anyhow!("--device cuda: no usable GPU ({e})"))
        }
        "cuda" => Err(usage(
            "--device cuda: this build has no CUDA support; rebuild with `cargo build --release --features cuda` (needs nvcc)",
        )),
        other => Err(usage(format!("--device {other:?}: expected cpu or cuda"))),
    }
}
