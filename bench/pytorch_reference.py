#!/usr/bin/env python3
"""PyTorch reference for `saddlescope bench`: the same models, batch and dtype, timed the way
PyHessian computes Hessian-vector products (double backward). Optional, never run by CI or
the tests; needs PyTorch 2.x (`pip install torch`, several GB).

    python3 bench/pytorch_reference.py --model resnet32 --batch 32 --dtype f32 --repeats 5

    python3 bench/pytorch_reference.py --compare target/release/saddlescope

With `--compare BINARY` it runs `BINARY bench --json` and this reference for each model
(`--models`, default all three; `--batch` and `--dtype` apply to all) one after the other
and prints a table of the ratios saddlescope/PyTorch (HVP, gradient), HVP/gradient for
both, and the load average around the run (the machine may be shared); `just
bench-vs-torch` does this.

Otherwise it prints one JSON object on its last line with the keys of `saddlescope bench --json`:
`model`, `batch`, `dtype`, `params`, `threads`, `forward_ms`, `grad_ms`, `hvp_ms` (medians
over `--repeats` after one warm-up), `forward_peak_rss_mb`, `grad_peak_rss_mb`,
`hvp_peak_rss_mb` (peak resident set, each measured in a fresh child process so that the
peaks do not mask each other), `hvp_over_grad`.

Models (eval mode, random weights with batch-norm running statistics calibrated on the
batch, as `Model::calibrate_bn`; cross-entropy loss; every parameter in the Hessian):
- `mlp`: Linear(784, 256) - ReLU - Linear(256, 10) on 1x28x28 (203,530 parameters);
- `cnn`: two stages of conv3x3 (no bias) - BatchNorm - ReLU - avg_pool 2, widths 16 and 32,
  then Linear(32*7*7, 10) on 1x28x28 (20,538 parameters; saddlescope's `cnn`);
- `resnet32`: the long-tail reference code's CIFAR ResNet-32 (option-A shortcuts) on
  3x32x32 (464,154 parameters), imported from `tests/fixtures/pytorch/make_fixtures.py` so
  that one definition serves the fixtures, the cross-check and this benchmark.

Measurements:
- forward: the loss under `torch.no_grad()`;
- grad: loss and `torch.autograd.grad(loss, params)`;
- hvp: loss, `g = autograd.grad(loss, params, create_graph=True)`, then
  `autograd.grad(g, params, v)` for a fixed direction v (PyHessian's `hessian_vector_product`).
"""

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pytorch" / "make_fixtures.py"
KINDS = ("forward", "grad", "hvp")


def resnet_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Cnn(nn.Module):
    """saddlescope's `cnn` (crates/nn/src/models/cnn.rs): conv-BN-ReLU-avgpool x2, linear."""

    def __init__(self, channels=1, side=28, widths=(16, 32), classes=10):
        super().__init__()
        layers, prev = [], channels
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(), nn.AvgPool2d(2)]
            prev, side = w, side // 2
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(prev * side * side, classes)

    def forward(self, x):
        return self.linear(self.features(x).flatten(1))


class Mlp(nn.Module):
    """saddlescope's `mlp:256`: flatten, Linear(784, 256), ReLU, Linear(256, 10)."""

    def __init__(self, inputs=784, hidden=256, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.linear = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.linear(F.relu(self.fc1(x.flatten(1))))


def build(name):
    """The model (eval mode, calibrated BN) and its input shape."""
    if name == "mlp":
        return Mlp(), (1, 28, 28)
    if name == "cnn":
        return Cnn(), (1, 28, 28)
    if name == "resnet32":
        return resnet_module().resnet32(10), (3, 32, 32)
    raise SystemExit(f"--model {name!r}: expected mlp, cnn or resnet32")


def setup(args):
    torch.manual_seed(0)
    dtype = {"f32": torch.float32, "f64": torch.float64}[args.dtype]
    model, shape = build(args.model)
    model = model.to(dtype)
    x = torch.randn(args.batch, *shape, dtype=dtype)
    y = torch.arange(args.batch) % 10
    # Calibrate BN running statistics on the batch (one train-mode pass, momentum 1).
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in params]
    return model, x, y, params, v


def measure(args, kind):
    """Median wall time (ms) of `kind` and this process's peak RSS (MiB)."""
    torch.set_num_threads(args.threads)
    model, x, y, params, v = setup(args)

    def forward():
        with torch.no_grad():
            F.cross_entropy(model(x), y).item()

    def grad():
        loss = F.cross_entropy(model(x), y)
        torch.autograd.grad(loss, params)

    def hvp():
        loss = F.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        torch.autograd.grad(g, params, v)

    fn = {"forward": forward, "grad": grad, "hvp": hvp}[kind]
    fn()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return statistics.median(times), peak_mb, sum(p.numel() for p in params)


def loadavg():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def reference(args, model, batch):
    cmd = [sys.executable, __file__, "--model", model, "--dtype", args.dtype,
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if batch is not None:
        cmd += ["--batch", str(batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args):
    """Runs saddlescope and PyTorch on each model and prints the ratios."""
    rows = []
    start = loadavg()
    for model in args.models.split(","):
        cmd = [args.compare, "bench", "--model", model, "--dtype", args.dtype,
               "--repeats", str(args.repeats), "--json"]
        if args.batch is not None:
            cmd += ["--batch", str(args.batch)]
        ours = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                         text=True).stdout.strip().splitlines()[-1])
        theirs = reference(args, model, args.batch)
        rows.append((model, ours, theirs))
    end = loadavg()
    print(f"load average (1 min): {start:.2f} before, {end:.2f} after; "
          f"median of {args.repeats} repeats, {args.dtype}, PyTorch {torch.__version__} "
          f"with {args.threads} threads")
    head = ("model", "batch", "grad ms s/t", "hvp ms s/t", "grad s/t", "hvp s/t",
            "hvp/grad s", "hvp/grad t", "hvp/grad peak s", "hvp/grad peak t")
    print(" | ".join(head))
    for model, s, t in rows:
        print(" | ".join([
            model, str(s["batch"]),
            f"{s['grad_ms']:.1f}/{t['grad_ms']:.1f}", f"{s['hvp_ms']:.1f}/{t['hvp_ms']:.1f}",
            f"{s['grad_ms'] / t['grad_ms']:.2f}", f"{s['hvp_ms'] / t['hvp_ms']:.2f}",
            f"{s['hvp_ms'] / s['grad_ms']:.2f}", f"{t['hvp_ms'] / t['grad_ms']:.2f}",
            f"{s['hvp_peak_rss_mb'] / s['grad_peak_rss_mb']:.2f}",
            f"{t['hvp_peak_rss_mb'] / t['grad_peak_rss_mb']:.2f}",
        ]))
    print(json.dumps({"loadavg_before": start, "loadavg_after": end,
                      "runs": [{"model": m, "saddlescope": s, "pytorch": t} for m, s, t in rows]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn", "resnet32"])
    parser.add_argument("--batch", type=int, default=None,
                        help="default: 512 (mlp), 128 (cnn), 32 (resnet32)")
    parser.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--compare", metavar="BINARY",
                        help="run BINARY bench too and print ratios (see above)")
    parser.add_argument("--models", default="mlp,cnn,resnet32",
                        help="models for --compare, comma-separated")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    if args.batch is None:
        args.batch = {"mlp": 512, "cnn": 128, "resnet32": 32}[args.model]
    if args.child:
        ms, peak, params = measure(args, args.child)
        print(json.dumps({"ms": ms, "peak_rss_mb": peak, "params": params}))
        return
    result = {"model": args.model, "batch": args.batch, "dtype": args.dtype,
              "threads": args.threads, "torch": torch.__version__}
    for kind in KINDS:
        cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch),
               "--dtype", args.dtype, "--repeats", str(args.repeats),
               "--threads", str(args.threads), "--child", kind]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        child = json.loads(out.strip().splitlines()[-1])
        result["params"] = child["params"]
        result[f"{kind}_ms"] = round(child["ms"], 3)
        result[f"{kind}_peak_rss_mb"] = round(child["peak_rss_mb"], 1)
    result["hvp_over_grad"] = round(result["hvp_ms"] / result["grad_ms"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
