//! Data sets for long-tailed classification: MNIST IDX, CIFAR-10/100 binary, synthetic mixtures, imbalance selection, groups and batching
#![deny(missing_docs)]
