# shellcheck shell=bash
# Source this file (`. scripts/cuda-env.sh`) before `cargo ... --features cuda`. It gives the
# build what candle's CUDA backend needs, without a GPU and without a system CUDA install:
#
# - nvcc, its headers and the CUDA libraries from NVIDIA's PyPI wheels, installed once into a
#   virtual environment under $SADDLESCOPE_CUDA_DIR (default ~/.cache/saddlescope/cuda-13.0,
#   outside the repository). A rerun with the same pins installs nothing.
# - The CUDA 13 wheels, because only they ship the nvcc compiler (the -cu12 "nvcc" wheels hold
#   ptxas alone). 13.0 is the oldest CUDA 13 and so asks the least of the GPU driver (>= 580).
# - A link-time stand-in for the driver library libcuda.so.1 (the driver itself comes with a
#   GPU): cudarc links libcuda dynamically, so the linker needs a library that defines its
#   symbols. The stand-in is generated from the driver functions cudarc declares, each
#   answering CUDA_ERROR_NO_DEVICE (100); it lies on the linker's path (LIBRARY_PATH), not the
#   loader's: at run time the real driver is loaded, and on a machine without one the binary
#   does not start (the loader names libcuda.so.1) unless $SADDLESCOPE_CUDA_DIR/no-driver
#   (the stand-in as libcuda.so.1) is put on LD_LIBRARY_PATH: then `--device cuda` reports
#   that there is no GPU and `--device cpu` runs as usual (`scripts/gpu-check.sh --device
#   cpu` does this to rehearse the GPU check).
# - CUDA_COMPUTE_CAP (candle-kernels compiles for one GPU architecture): the GPU's, read from
#   nvidia-smi when there is one, else 90 (H100/H200); set it yourself to build for another.
#
# With no network but a system CUDA toolkit (nvcc on PATH or in /usr/local/cuda), as on a GPU
# machine that cannot reach PyPI, that toolkit is used instead.

saddlescope_cuda_pins=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
)
SADDLESCOPE_CUDA_DIR=${SADDLESCOPE_CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/saddlescope/cuda-13.0}

# Installs the pinned wheels into $SADDLESCOPE_CUDA_DIR/venv unless they are there already.
saddlescope_cuda_install_wheels() {
  local stamp="$SADDLESCOPE_CUDA_DIR/installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "${saddlescope_cuda_pins[*]}" ]]; then
    return 0
  fi
  echo "cuda-env: installing the CUDA 13.0 wheels into $SADDLESCOPE_CUDA_DIR" >&2
  mkdir -p "$SADDLESCOPE_CUDA_DIR" &&
    python3 -m venv "$SADDLESCOPE_CUDA_DIR/venv" &&
    "$SADDLESCOPE_CUDA_DIR/venv/bin/pip" install --quiet --disable-pip-version-check \
      "${saddlescope_cuda_pins[@]}" &&
    echo "${saddlescope_cuda_pins[*]}" >"$stamp"
}

# The toolkit root inside the wheels (they all unpack into nvidia/cu13).
saddlescope_cuda_wheel_root() {
  local site
  site=$("$SADDLESCOPE_CUDA_DIR/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') &&
    echo "$site/nvidia/cu13"
}

# Writes $1/libcuda.so: every driver function cudarc declares, answering CUDA_ERROR_NO_DEVICE,
# under the driver's soname, and $1/libX.so links for the wheels' versioned libX.so.N.
saddlescope_cuda_link_dir() {
  local link="$1" root="$2" repo cudarc lib
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  mkdir -p "$link"
  for lib in "$root"/lib/lib*.so.*; do
    ln -sfn "$lib" "$link/$(basename "${lib%%.so.*}").so"
  done
  cudarc=$(cd "$repo" && cargo metadata --format-version 1 --features cuda 2>/dev/null |
    python3 -c 'import json, sys, os
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in pkgs if p["name"] == "cudarc"))') || return 1
  grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys/mod.rs" | sort -u |
    awk '{print "int " $4 "(void) { return 100; }"}' >"$link/libcuda-stub.c.new" || return 1
  if [[ -f "$link/libcuda.so" ]] && cmp -s "$link/libcuda-stub.c.new" "$link/libcuda-stub.c"; then
    rm "$link/libcuda-stub.c.new"
  else
    mv "$link/libcuda-stub.c.new" "$link/libcuda-stub.c" &&
      cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/libcuda-stub.c" ||
      return 1
  fi
  mkdir -p "$SADDLESCOPE_CUDA_DIR/no-driver" &&
    ln -sfn "$link/libcuda.so" "$SADDLESCOPE_CUDA_DIR/no-driver/libcuda.so.1"
}

saddlescope_cuda_env() {
  local root
  if saddlescope_cuda_install_wheels && root=$(saddlescope_cuda_wheel_root) && [[ -x "$root/bin/nvcc" ]]; then
    saddlescope_cuda_link_dir "$SADDLESCOPE_CUDA_DIR/link" "$root" || return 1
    export LIBRARY_PATH="$SADDLESCOPE_CUDA_DIR/link${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  elif command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
    root=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
    echo "cuda-env: no CUDA wheels; using the system CUDA toolkit in $root" >&2
  else
    echo "cuda-env: could not install the CUDA wheels and found no system nvcc" >&2
    return 1
  fi
  export CUDA_ROOT="$root" CUDA_HOME="$root" CUDA_PATH="$root"
  export PATH="$root/bin:$PATH"
  export CPATH="$root/include${CPATH:+:$CPATH}"
  if [[ -z "${CUDA_COMPUTE_CAP:-}" ]]; then
    CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '.')
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  fi
  echo "cuda-env: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') in $root, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
}

saddlescope_cuda_env
