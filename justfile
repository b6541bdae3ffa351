# Developer recipes. `just --list` shows them. CI runs `.ci/run`, which uses the same commands.

# Run the whole test suite (the README's test command).
test:
    cargo test --workspace --release

# Format check, clippy with warnings as errors, and docs.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Everything CI does.
ci:
    bash .ci/run

# Look for repeated code introduced by the working-tree change.
dup:
    duplicates --change

# saddlescope vs PyTorch side by side: HVPs of the CNN and ResNet-32 at batch 200 against
# PyHessian's graph-reuse HVP and a double backward, then the class-wise analysis of a
# PyTorch-trained CNN against PyHessian (f32 and f64), then every ratio in one summary; then
# training (CNN + SAM epoch on MNIST-LT, CNN epoch without SAM, ResNet-32 train step at batch
# 128), 2 threads each. Needs `pip install torch pyhessian` (several GB); never run by CI.
bench-vs-torch repeats="5" rounds="3":
    cargo build --release --bin saddlescope
    python3 bench/pytorch_reference.py --mode all --compare target/release/saddlescope --models cnn,resnet32 --batch 200 --repeats {{repeats}} --rounds {{rounds}}
    python3 bench/pytorch_train_reference.py --compare target/release/saddlescope --repeats {{repeats}}

# A sharded analysis through a real Slurm on this machine: installs slurm-wlm and munge
# (apt-get, root), starts a one-node cluster on localhost, submits the job array and the
# dependent merge with sbatch and checks the merge against an unsharded run. Not in CI.
slurm-test:
    bash scripts/slurm-test.sh

# The CUDA build (`--features cuda`) without a GPU or a system CUDA: scripts/cuda-env.sh
# installs nvcc and the CUDA libraries from NVIDIA's PyPI wheels into ~/.cache/saddlescope
# (once), sets CUDA_COMPUTE_CAP (the GPU's, else 90) and the paths. Run the binary with
# `. scripts/cuda-env.sh` sourced (it finds cuBLAS & co. through LD_LIBRARY_PATH).
cuda-build:
    bash -c '. scripts/cuda-env.sh && cargo build --release --features cuda'

# What CI checks of the CUDA build: every target type-checks with `--features cuda`
# (candle's CUDA kernels are compiled by nvcc on the way).
cuda-check:
    bash -c '. scripts/cuda-env.sh && cargo check --workspace --all-targets --features cuda'

# On a machine with a CUDA GPU: build with `--features cuda`, then the HVP tests on CUDA
# against the CPU in f64, bench on CUDA (mlp, cnn, resnet32), 2 epochs of ResNet-32 on a
# synthetic CIFAR-10-LT, the analysis and landscape of one class; one line per check.
# `just gpu-check --device cpu` rehearses it on the CPU. Never run by CI.
gpu-check *args:
    bash scripts/gpu-check.sh {{args}}
