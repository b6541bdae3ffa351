//! Integration tests of saddlescope-nn: exact Hessian-vector products against analytic
//! Hessians and central differences of exact gradients, and the model/loss API.

mod util;

mod double_backward;
mod hvp_exact;
mod hvp_resnet;
mod linearized;
mod model_api;
mod sample_sets;
