//! The long-tail trainer (SGD with momentum, SAM, DRW, LR schedules) and its checkpoints
#![deny(missing_docs)]
