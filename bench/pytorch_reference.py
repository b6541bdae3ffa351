#!/usr/bin/env python3
"""PyTorch reference for `saddlescope bench`: the same models, batch and dtype, timed the way
PyHessian computes Hessian-vector products (double backward), and PyHessian's class-wise
analysis of the same checkpoint. Optional, never run by CI or the tests; needs PyTorch 2.x
(`pip install torch`, several GB) and, for `--mode analysis`, PyHessian 0.1
(`pip install pyhessian`).

    python3 bench/pytorch_reference.py --model resnet32 --batch 32 --dtype f32 --repeats 5

    python3 bench/pytorch_reference.py --compare target/release/saddlescope

    python3 bench/pytorch_reference.py --mode analysis --compare target/release/saddlescope

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
  `autograd.grad(g, params, v)` for a fixed direction v (PyHessian's `hessian_vector_product`
  from scratch, as with a data loader);
- hvp_reuse: the gradient graph built once, then only `autograd.grad(g, params, v,
  retain_graph=True)` per product: what PyHessian does with a single batch (`data=`), the
  reference for an HVP whose Hessian is fixed. Its peak includes the kept graph.

`--mode analysis` (the class-wise job of the paper with PyHessian): a `cnn` trained here in
PyTorch on the train split of the embedded MNIST (`data/mnist10k`, three epochs of SGD,
seeded) and saved as a state dict with saddlescope's names (`--checkpoint`, trained once and
reused); then for each class, on its 200 test images, `hessian(model, CrossEntropyLoss,
data=(x, y))` followed by `eigenvalues(top_n=1)`, `trace()` and `density(iter=100, n_v=1)`,
the HVPs counted. With `--compare BINARY` each round also runs `BINARY bench analysis` on the
same checkpoint and images (`--lanczos-steps 100 --probes 1`, f32 and f64), the rounds
interleaved, and the table shows the fastest of `--rounds` for each with the ratios.
`--mode all --compare BINARY` (what `just bench-vs-torch` runs) does both: the HVP table for
`--models` at `--batch` (default `cnn,resnet32` at 200, the issue's setting), then the
analysis, then one summary of the ratios saddlescope/PyTorch side by side. The training
ratios come from `bench/pytorch_train_reference.py --compare BINARY`, which `just
bench-vs-torch` runs next.
"""

import argparse
import gzip
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
MNIST = ROOT / "data" / "mnist10k"
KINDS = ("forward", "grad", "hvp", "hvp_reuse")
# MNIST normalization of saddlescope's data crate (PyTorch's examples/mnist).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def resnet_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Cnn(nn.Module):
    """saddlescope's `cnn` (crates/nn/src/models/cnn.rs) with its parameter names
    (`conv1.weight`, `bn1.*`, `conv2.weight`, `bn2.*`, `linear.*`): conv-BN-ReLU-avgpool x2,
    linear."""

    def __init__(self, channels=1, side=28, widths=(16, 32), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[1])
        self.linear = nn.Linear(widths[1] * (side // 4) ** 2, classes)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.linear(x.flatten(1))


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

    kept = []

    def hvp_reuse():
        if not kept:
            loss = F.cross_entropy(model(x), y)
            kept.append(torch.autograd.grad(loss, params, create_graph=True))
        torch.autograd.grad(kept[0], params, v, retain_graph=True)

    fn = {"forward": forward, "grad": grad, "hvp": hvp, "hvp_reuse": hvp_reuse}[kind]
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
    """Runs saddlescope and PyTorch on each model, prints the table and returns its rows
    `(model, saddlescope json, pytorch json)`."""
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
    head = ("model", "batch", "grad ms s/t", "hvp ms s/t/t-reuse", "grad s/t", "hvp s/t",
            "hvp s/t-reuse", "hvp/grad s", "hvp/grad t", "hvp/grad peak s", "hvp/grad peak t")
    print(" | ".join(head))
    for model, s, t in rows:
        print(" | ".join([
            model, str(s["batch"]),
            f"{s['grad_ms']:.1f}/{t['grad_ms']:.1f}",
            f"{s['hvp_ms']:.1f}/{t['hvp_ms']:.1f}/{t['hvp_reuse_ms']:.1f}",
            f"{s['grad_ms'] / t['grad_ms']:.2f}", f"{s['hvp_ms'] / t['hvp_ms']:.2f}",
            f"{s['hvp_ms'] / t['hvp_reuse_ms']:.2f}",
            f"{s['hvp_ms'] / s['grad_ms']:.2f}", f"{t['hvp_ms'] / t['grad_ms']:.2f}",
            f"{s['hvp_peak_rss_mb'] / s['grad_peak_rss_mb']:.2f}",
            f"{t['hvp_peak_rss_mb'] / t['grad_peak_rss_mb']:.2f}",
        ]))
    print(json.dumps({"loadavg_before": start, "loadavg_after": end,
                      "runs": [{"model": m, "saddlescope": s, "pytorch": t} for m, s, t in rows]}))
    return rows


# --- The class-wise analysis with PyHessian (`--mode analysis`) -------------------------


def mnist10k(split):
    """The embedded MNIST split ("train" or "test") as normalized float32 images
    (N, 1, 28, 28) and int64 labels, in file order."""
    def read(name, magic, header):
        data = gzip.decompress((MNIST / name).read_bytes())
        if int.from_bytes(data[:4], "big") != magic:
            raise SystemExit(f"{MNIST / name}: bad IDX magic")
        return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8)
    images = read(f"{split}-images-idx3-ubyte.gz", 2051, 16).reshape(-1, 1, 28, 28)
    labels = read(f"{split}-labels-idx1-ubyte.gz", 2049, 8).to(torch.int64)
    x = (images.to(torch.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    return x, labels


def train_cnn(path, epochs=3, seed=0):
    """Trains saddlescope's `cnn` on the MNIST train split (SGD, lr 0.05, momentum 0.9,
    batch 128, seeded) and saves its state dict (saddlescope's names) at `path`."""
    torch.manual_seed(seed)
    x, y = mnist10k("train")
    model = Cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(state, path)


def pyhessian_analysis(checkpoint, seed=0):
    """PyHessian's per-class job on `checkpoint`: for each class, on its test images,
    `eigenvalues(top_n=1)`, `trace()` and `density(iter=100, n_v=1)`. Returns the wall
    time (s) and the number of HVPs."""
    import pyhessian

    # The module, not the class `pyhessian.hessian` its package exports under that name.
    ph = sys.modules["pyhessian.hessian"]

    # PyHessian 0.1 calls torch.eig, which torch 2.x keeps only as a stub that raises: the
    # same result (eigenvalues as (real, imaginary) pairs, eigenvectors) from eigh.
    def eig(a, eigenvectors=False):
        w, v = torch.linalg.eigh(a)
        return torch.stack([w, torch.zeros_like(w)], 1), v
    torch.eig = eig
    count = [0]
    plain = ph.hessian_vector_product

    def counted(*a, **k):
        count[0] += 1
        return plain(*a, **k)

    ph.hessian_vector_product = counted
    model = Cnn()
    model.load_state_dict(torch.load(checkpoint), strict=False)
    model.eval()
    x, y = mnist10k("test")
    torch.manual_seed(seed)
    start = time.perf_counter()
    for c in range(10):
        mask = y == c
        h = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x[mask], y[mask]), cuda=False)
        h.eigenvalues(top_n=1)
        h.trace()
        h.density(iter=100, n_v=1)
    return time.perf_counter() - start, count[0]


def compare_analysis(args):
    """PyHessian and `saddlescope bench analysis` (f32, f64) on the same checkpoint, rounds
    interleaved; prints the fastest of each and the ratios."""
    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        train_cnn(checkpoint)
    common = [str(checkpoint), "--arch", "cnn", "--dataset", "mnist10k", "--split", "test",
              "--lanczos-steps", "100", "--probes", "1", "--rounds", "1", "--json"]
    times = {"pyhessian": [], "f32": [], "f64": []}
    hvps = {}
    loads = [loadavg()]
    for _ in range(args.rounds):
        wall, count = pyhessian_analysis(checkpoint)
        times["pyhessian"].append(wall)
        hvps["pyhessian"] = count
        for dtype in ("f32", "f64"):
            if args.compare:
                cmd = [args.compare, "bench", "analysis", *common, "--dtype", dtype]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                ours = json.loads(out.strip().splitlines()[-1])
                times[dtype].append(ours["wall_s"])
                hvps[dtype] = ours["applications"]
        loads.append(loadavg())
    best = {k: min(v) for k, v in times.items() if v}
    print(f"class-wise analysis of {checkpoint} (10 classes x 200 test images), fastest of "
          f"{args.rounds} interleaved rounds; load average (1 min) "
          + ", ".join(f"{l:.2f}" for l in loads) + f"; PyTorch {torch.__version__} with "
          f"{torch.get_num_threads()} threads")
    for name, seconds in best.items():
        ratio = seconds / best["pyhessian"]
        print(f"{name:>9}: {seconds:8.2f} s, {hvps[name]:5d} HVPs, "
              f"{1e3 * seconds / hvps[name]:7.1f} ms per HVP, ratio to PyHessian {ratio:.2f}")
    print(json.dumps({"bench": "analysis", "best_s": best, "rounds_s": times, "hvps": hvps,
                      "loadavg": loads}))
    return best


def compare_all(args):
    """The HVP table, the analysis, then every ratio saddlescope/PyTorch in one summary."""
    rows = compare(args)
    best = compare_analysis(args)
    print(f"\nsummary, saddlescope / PyTorch ({args.dtype} HVPs; load averages above):")
    for model, s, t in rows:
        print(f"  HVP {model} batch {s['batch']}: {s['hvp_ms'] / t['hvp_reuse_ms']:.2f} of "
              f"PyHessian's graph-reuse HVP, {s['hvp_ms'] / t['hvp_ms']:.2f} of a double "
              f"backward from scratch")
    for dtype in ("f32", "f64"):
        if dtype in best:
            print(f"  analysis {dtype}: {best[dtype] / best['pyhessian']:.2f} of PyHessian")


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
    parser.add_argument("--mode", default="hvp", choices=["hvp", "analysis", "all"],
                        help="hvp: forward/gradient/HVP timings (default); analysis: the "
                             "class-wise job with PyHessian; all: both and a summary")
    parser.add_argument("--checkpoint", default=str(ROOT / "target" / "bench" / "cnn-mnist10k.pth"),
                        help="--mode analysis: the cnn checkpoint (trained here if missing)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--mode analysis: interleaved rounds (fastest reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode == "analysis":
        compare_analysis(args)
        return
    if args.mode == "all":
        if not args.compare:
            raise SystemExit("--mode all needs --compare BINARY")
        compare_all(args)
        return
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
