//! Integration tests of saddlescope-nn: exact Hessian-vector products against analytic
//! Hessians and central differences of exact gradients, the model/loss API, and (with the
//! `cuda` feature, on a GPU) the same HVPs on CUDA against the CPU.

mod util;

mod double_backward;
#[cfg(feature = "cuda")]
mod hvp_cuda;
mod hvp_exact;
mod hvp_resnet;
mod linearized;
mod model_api;
mod sample_sets;
