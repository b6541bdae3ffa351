//! Models and losses for long-tailed classification on candle, each with a forward-mode tangent for exact Hessian-vector products
#![deny(missing_docs)]
