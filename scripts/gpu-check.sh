#!/usr/bin/env bash
# The GPU check (`just gpu-check`): on a machine with a CUDA GPU, builds with
# `--features cuda` (scripts/cuda-env.sh) and runs, printing one summary line per check:
#   hvp-tests  the nn HVP and gradient tests on CUDA against the CPU in f64
#              (f32 within 1e-4 relative, f64 within 1e-10; crates/nn/tests/hvp_cuda.rs)
#   bench-*    `saddlescope bench` on CUDA for mlp, cnn and resnet32
#   train      2 epochs of ResNet-32 on a synthetic CIFAR-10-LT (random pixels written here)
#   analyze    the class-wise analysis of one class (the tail class) of that checkpoint
#   landscape  that class's loss along its extreme eigenvectors
# Every check runs even when one before it failed; the exit status is 1 if any failed.
# Logs: $GPU_CHECK_DIR (default target/gpu-check).
#
# `scripts/gpu-check.sh --device cpu` runs the same checks on the CPU with the CUDA build (a
# rehearsal on a machine without a GPU: the HVP tests then compare the CPU in f32 and f64;
# without a driver, the build's libcuda stand-in is put on the loader's path).
set -uo pipefail
cd "$(dirname "$0")/.."

device=cuda
if [[ "${1:-}" == "--device" && -n "${2:-}" ]]; then
  device=$2
elif [[ $# -gt 0 ]]; then
  echo "usage: scripts/gpu-check.sh [--device cuda|cpu]" >&2
  exit 2
fi
out=${GPU_CHECK_DIR:-target/gpu-check}
rm -rf "$out" && mkdir -p "$out/logs"
failed=0
bin=target/release/saddlescope

# check NAME COMMAND...: runs COMMAND with its output in $out/logs/NAME.log and prints one
# line: ok or FAILED, seconds, and the last line the command printed (its summary).
check() {
  local name=$1 start status last took
  shift
  start=$(date +%s%N)
  "$@" >"$out/logs/$name.log" 2>&1
  status=$?
  last=$(grep -v '^\s*$' "$out/logs/$name.log" | tail -n 1 | cut -c1-160)
  took=$((($(date +%s%N) - start) / 1000000))
  took="$((took / 1000)).$((took % 1000 / 100))"
  if [[ $status -eq 0 ]]; then
    printf 'gpu-check: %-15s ok      %6ss  %s\n' "$name" "$took" "$last"
  else
    printf 'gpu-check: %-15s FAILED  %6ss  (exit %s, %s) %s\n' "$name" "$took" "$status" \
      "$out/logs/$name.log" "$last"
    failed=1
  fi
}

# The ignored HVP tests of crates/nn/tests/hvp_cuda.rs, then one line: the worst relative
# errors against the CPU in f64 (f32 and f64).
hvp_tests() {
  local log="$out/logs/hvp-tests.cargo" status
  cargo test --workspace --release --features cuda --tests hvp_cuda \
    -- --ignored --nocapture --test-threads 1 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  awk '/worst relative error/ { e = $NF + 0; if (e > w[$3]) w[$3] = e; n[$3]++ }
    END { printf "%d cases; worst vs CPU f64: F32 %.2e (<= 1e-4), F64 %.2e (<= 1e-10)\n", n["F32"] + n["F64"], w["F32"], w["F64"] }' "$log"
  return "$status"
}

# bench_line MODEL: the bench's median times, one line.
bench_line() {
  "$bin" bench --model "$1" --device "$device" --repeats 3 --json | tail -n 1 |
    python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
print("{model} batch {batch} on {device}: forward {forward_ms:.2f} ms, grad {grad_ms:.2f} ms, hvp {hvp_ms:.2f} ms".format(**r))'
}

# train_line: 2 epochs of ResNet-32, then the last epoch's record, one line.
train_line() {
  "$bin" train --preset cifar10-lt-ce --dataset "cifar10:$out/cifar10" --epochs 2 \
    --device "$device" --out "$out/run" --quiet &&
    tail -n 1 "$out/run/log.jsonl" | python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
print("epoch {epoch}: train loss {train_loss:.3f}, test accuracy {acc:.3f}, {seconds:.1f} s".format(acc=r["test"]["accuracy"], **r))'
}

# Writes a CIFAR-10 "binary version" of random pixels: 600 records per train file (300 per
# class over the 5 files), 1,000 test records; class k's pixels lean towards 25·k, so
# training can learn something.
synthetic_cifar() {
  python3 - "$1" <<'EOF'
import os, random, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(0)
def records(count, offset):
    data = bytearray()
    for i in range(count):
        label = (i + offset) % 10
        data.append(label)
        data.extend(min(255, max(0, int(rng.gauss(25 * label + 15, 40)))) for _ in range(3072))
    return bytes(data)
for b in range(1, 6):
    open(os.path.join(out, f"data_batch_{b}.bin"), "wb").write(records(600, b))
open(os.path.join(out, "test_batch.bin"), "wb").write(records(1000, 0))
EOF
}

analysis_line() {
  "$bin" analyze "$out/run/last.safetensors" --out "$out/analysis" --class-ids 9 --no-all \
    --device "$device" --lanczos-steps 30 --probes 2 --max-applications 200 --quiet &&
    python3 - "$out/analysis" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/summary.csv")))
for r in rows:
    print("class {class} ({samples} samples): lambda_min {lambda_min}, lambda_max {lambda_max}, verdict {verdict}".format(**r))
EOF
}

landscape_line() {
  "$bin" landscape "$out/run/last.safetensors" --class 9 --out "$out/landscape" \
    --device "$device" --points 11 --lanczos-steps 30 --max-applications 200 --quiet &&
    ls "$out/landscape" | tr '\n' ' ' && echo
}

echo "gpu-check: device $device, logs in $out/logs"
# shellcheck source=scripts/cuda-env.sh
if ! . scripts/cuda-env.sh; then
  echo "gpu-check: the CUDA build environment could not be set up" >&2
  exit 1
fi
if [[ "$device" == cpu ]] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  export LD_LIBRARY_PATH="$SADDLESCOPE_CUDA_DIR/no-driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export SADDLESCOPE_GPU_CHECK_DEVICE=$device

# One build of the binary and the tests: `cargo build` and `cargo test` resolve features apart
# (dev-dependencies), so building them separately runs candle's nvcc kernel build twice.
check build cargo test --workspace --release --features cuda --no-run
checks_start=$(date +%s)
check hvp-tests hvp_tests
for model in mlp cnn resnet32; do
  check "bench-$model" bench_line "$model"
done
check data synthetic_cifar "$out/cifar10"
check train train_line
check analyze analysis_line
check landscape landscape_line
echo "gpu-check: checks took $(($(date +%s) - checks_start)) s after the build; $([[ $failed -eq 0 ]] && echo 'all passed' || echo 'some FAILED')"
exit "$failed"
