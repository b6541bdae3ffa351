#!/usr/bin/env python3
"""PyTorch reference for `saddlescope bench train`: the same training recipes, timed the same
way. Optional, never run by CI or the tests; needs PyTorch 2.x (`pip install torch`).

    python3 bench/pytorch_train_reference.py --kind epoch --epochs 4
    python3 bench/pytorch_train_reference.py --kind step --model resnet32 --batch 128

    python3 bench/pytorch_train_reference.py --compare target/release/saddlescope

Kinds (each prints one JSON object on its last line with the keys of `saddlescope bench
train`):
- `epoch`: the preset `mnist-lt-ce-drw-sam` with the `cnn` (`--sam 0`: without SAM) on
  MNIST-LT built from `data/mnist10k` (the IDX files saddlescope embeds): exp profile, ratio
  100, n_max the smallest class count (663), so 1,634 training samples in 26 batches of 64
  (the last one short, no drop_last), 2,000 test samples; pixels / 255 normalized with mean
  0.1307, std 0.3081; a fresh shuffle every epoch; SGD with momentum 0.9, weight decay 5e-4,
  lr 0.05 (step schedule with warm-up, as saddlescope's); cross-entropy with DRW class
  weights (beta 0.9999) from the epoch saddlescope derives; SAM (Foret et al.): gradient,
  e = rho g/||g||, gradient at w + e with batch statistics but the running statistics left
  alone (saddlescope's default), back to w, SGD step with that gradient; after every epoch
  the test loss and accuracy in eval mode, batch 500. An epoch's time is training plus
  evaluation, as saddlescope's log records it. `epoch_median_s` is the median of the
  epochs after the first (a warm-up).
- `step`: one training step on a seeded random batch (default ResNet-32, batch 128):
  `zero_grad`, forward in train mode (batch-norm batch statistics, running statistics
  updated), cross-entropy, backward, SGD with momentum 0.9 and weight decay 2e-4; the
  median of `--repeats` after one warm-up.

With `--compare BINARY` it runs `BINARY bench train` and this reference for the CNN + SAM
epoch, the CNN epoch without SAM and the ResNet-32 step, alternating the two sides round by
round (`--rounds`) with the same number of threads (`--threads`, default 2), and prints the
wall and CPU times and their ratios saddlescope/PyTorch with the load average around the
run (the machine may be shared: under load PyTorch's OpenMP threads lose far more than
rayon's, so trust only quiet-machine wall ratios); `just bench-vs-torch` does this after the
HVP comparison.
"""

import argparse
import gzip
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_reference import Cnn, Mlp, loadavg, resnet_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MNIST10K = ROOT / "data" / "mnist10k"
# The recipe of saddlescope's `mnist-lt-ce-drw-sam` preset (crates/train/src/presets.rs).
MNIST_LT = dict(ratio=100.0, batch=64, lr=0.05, momentum=0.9, weight_decay=5e-4, rho=0.2,
                planned_epochs=30, drw_beta=0.9999, mean=0.1307, std=0.3081, eval_batch=500)


def read_idx(path):
    """An IDX file (gzip-compressed) as a uint8 tensor of its declared shape."""
    data = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(data[:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    offset = 4 + 4 * len(dims)
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def normalized(images):
    return ((images.float() / 255.0 - MNIST_LT["mean"]) / MNIST_LT["std"]).unsqueeze(1)


def mnist_lt():
    """(train x, train y, test x, test y, per-class train counts) of MNIST-LT."""
    x = read_idx(MNIST10K / "train-images-idx3-ubyte.gz")
    y = read_idx(MNIST10K / "train-labels-idx1-ubyte.gz").long()
    classes = int(y.max()) + 1
    n_max = min(int((y == c).sum()) for c in range(classes))
    counts = [int(n_max * (1.0 / MNIST_LT["ratio"]) ** (c / (classes - 1.0)))
              for c in range(classes)]
    keep = torch.cat([torch.nonzero(y == c).flatten()[:counts[c]] for c in range(classes)])
    test_x = read_idx(MNIST10K / "test-images-idx3-ubyte.gz")
    test_y = read_idx(MNIST10K / "test-labels-idx1-ubyte.gz").long()
    return normalized(x[keep]), y[keep], normalized(test_x), test_y, counts


def scaled_epoch(epoch, epochs):
    """saddlescope's `scaled_epoch`: an epoch of the 200-epoch recipe on `epochs` epochs
    (rounded half away from zero, as Rust's `f64::round`)."""
    return math.floor(epoch * epochs / 200.0 + 0.5)


def lr_at(epoch, epochs):
    base, warmup = MNIST_LT["lr"], max(scaled_epoch(5, epochs), 1)
    if epoch <= warmup:
        return base * epoch / warmup
    if epoch > scaled_epoch(180, epochs):
        return base * 1e-4
    return base * (0.01 if epoch > scaled_epoch(160, epochs) else 1.0)


def drw_weights(counts):
    beta = MNIST_LT["drw_beta"]
    raw = [(1.0 - beta) / (1.0 - beta ** n) for n in counts]
    return torch.tensor([w / sum(raw) * len(counts) for w in raw])


def set_bn_momentum(model, momentum):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum


def sam_step(model, opt, loss_fn, x, y, rho):
    """One SAM step: ascend to w + rho g/||g||, take the gradient there, step from w."""
    loss = loss_fn(model(x), y)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.norm(torch.stack([p.grad.norm(2) for p in params]), 2)
    scale = rho / (norm + 1e-12)
    with torch.no_grad():
        shifts = [p.grad * scale for p in params]
        for p, e in zip(params, shifts):
            p.add_(e)
    opt.zero_grad()
    set_bn_momentum(model, 0.0)  # batch statistics, running statistics untouched
    loss_fn(model(x), y).backward()
    set_bn_momentum(model, 0.1)
    with torch.no_grad():
        for p, e in zip(params, shifts):
            p.sub_(e)
    opt.step()
    return loss


def evaluate(model, x, y):
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), MNIST_LT["eval_batch"]):
            logits = model(x[i:i + MNIST_LT["eval_batch"]])
            target = y[i:i + MNIST_LT["eval_batch"]]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += int((logits.argmax(1) == target).sum())
    model.train()
    return loss_sum / len(y), correct / len(y)


def epochs(args):
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y, counts = mnist_lt()
    model = {"cnn": Cnn, "mlp": Mlp}[args.model]()
    opt = torch.optim.SGD(model.parameters(), lr=MNIST_LT["lr"], momentum=MNIST_LT["momentum"],
                          weight_decay=MNIST_LT["weight_decay"])
    drw_from = scaled_epoch(160, args.epochs) + 1
    weights = drw_weights(counts)
    rho = MNIST_LT["rho"] if args.sam is None else args.sam
    seconds, last = [], None
    gen = torch.Generator().manual_seed(0)
    cpu_start = time.process_time()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(epoch, args.epochs)
        w = weights if epoch >= drw_from else None

        def loss_fn(logits, target):
            return F.cross_entropy(logits, target, weight=w)

        order = torch.randperm(len(train_y), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(order), MNIST_LT["batch"]):
            idx = order[i:i + MNIST_LT["batch"]]
            x, y = train_x[idx], train_y[idx]
            opt.zero_grad()
            if rho > 0:
                loss = sam_step(model, opt, loss_fn, x, y, rho)
            else:
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        test_loss, test_accuracy = evaluate(model, test_x, test_y)
        seconds.append(time.perf_counter() - start)
        last = (total / seen, test_accuracy)
    cpu = (time.process_time() - cpu_start) / args.epochs
    after_warm_up = seconds[1:] if len(seconds) > 1 else seconds
    return {"model": args.model, "preset": "mnist-lt-ce-drw-sam", "batch": MNIST_LT["batch"],
            "sam_rho": rho if rho > 0 else None, "epochs": args.epochs,
            "steps_per_epoch": math.ceil(len(train_y) / MNIST_LT["batch"]),
            "epoch_s": seconds, "epoch_median_s": statistics.median(after_warm_up),
            "cpu_s_per_epoch": cpu,
            "train_loss": last[0], "test_accuracy": last[1]}


def step(args):
    torch.manual_seed(0)
    if args.model == "resnet32":
        model, shape = resnet_module().resnet32(10), (3, 32, 32)
    else:
        model, shape = {"cnn": Cnn, "mlp": Mlp}[args.model](), (1, 28, 28)
    batch = args.batch or 128
    x = torch.randn(batch, *shape)
    y = torch.arange(batch) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    model.train()

    def once():
        start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        return (time.perf_counter() - start) * 1e3

    once()
    cpu_start = time.process_time()
    times = [once() for _ in range(args.repeats)]
    cpu = (time.process_time() - cpu_start) * 1e3 / args.repeats
    return {"model": args.model, "batch": batch, "repeats": args.repeats,
            "params": sum(p.numel() for p in model.parameters()),
            "step_ms": statistics.median(times), "step_min_ms": min(times), "step_cpu_ms": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


# --- Side by side ------------------------------------------------------------------------

CASES = [  # (label, saddlescope bench train flags, this script's flags, wall key, CPU key)
    ("cnn + SAM epoch", ["--kind", "epoch"], ["--kind", "epoch"], "epoch_median_s",
     "cpu_s_per_epoch"),
    ("cnn epoch, no SAM", ["--kind", "epoch", "--sam", "0"], ["--kind", "epoch", "--sam", "0"],
     "epoch_median_s", "cpu_s_per_epoch"),
    ("resnet32 step b128", ["--kind", "step"], ["--kind", "step"], "step_ms", "step_cpu_ms"),
]


def last_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args):
    """Runs both sides for every case, alternating them round by round, with the same
    number of threads (saddlescope's via RAYON_NUM_THREADS), and prints the ratios of wall
    and CPU times. `--kind` keeps that kind's cases only (all without it)."""
    cases = [case for case in CASES if args.kind in (None, case[1][1])]
    common = ["--epochs", str(args.epochs), "--repeats", str(args.repeats)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    rows = {label: [] for label, *_ in cases}
    start = loadavg()
    for _ in range(args.rounds):
        for label, ours, theirs, wall, cpu in cases:
            s = last_json([args.compare, "bench", "train", *ours, *common], env)
            t = last_json([sys.executable, __file__, *theirs, *common,
                           "--threads", str(args.threads)])
            rows[label].append({"saddlescope": s, "pytorch": t, "wall_ratio": s[wall] / t[wall],
                                "cpu_ratio": s[cpu] / t[cpu]})
    end = loadavg()
    print(f"load average (1 min): {start:.2f} before, {end:.2f} after; {args.rounds} rounds "
          f"alternating saddlescope and PyTorch {torch.__version__}, {args.threads} threads "
          f"each; epochs: median of epochs 2..{args.epochs}; steps: median of {args.repeats}")
    print(" | ".join(("case", "wall saddlescope", "wall PyTorch", "wall s/t", "CPU s/t")))
    for label, *_, wall, _cpu in cases:
        unit = "s" if wall.endswith("_s") else "ms"
        runs = rows[label]
        print(" | ".join((
            label,
            ", ".join(f"{r['saddlescope'][wall]:.3g} {unit}" for r in runs),
            ", ".join(f"{r['pytorch'][wall]:.3g} {unit}" for r in runs),
            ", ".join(f"{r['wall_ratio']:.2f}" for r in runs),
            ", ".join(f"{r['cpu_ratio']:.2f}" for r in runs),
        )))
    print(json.dumps({"loadavg_before": start, "loadavg_after": end, "threads": args.threads,
                      "cases": rows}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default=None, choices=["epoch", "step"],
                        help="default: epoch; with --compare, both kinds")
    parser.add_argument("--model", default=None, choices=["mlp", "cnn", "resnet32"],
                        help="default: cnn (epoch), resnet32 (step)")
    parser.add_argument("--batch", type=int, default=None, help="step only; default 128")
    parser.add_argument("--sam", type=float, default=None,
                        help="epoch only: SAM radius, 0 for plain SGD (default 0.2)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="--compare: rounds per case")
    parser.add_argument("--compare", metavar="BINARY",
                        help="run BINARY bench train too and print ratios (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        compare(args)
        return
    args.kind = args.kind or "epoch"
    if args.model is None:
        args.model = "cnn" if args.kind == "epoch" else "resnet32"
    result = epochs(args) if args.kind == "epoch" else step(args)
    result.update({"bench": "train", "kind": args.kind, "dtype": "f32",
                   "threads": args.threads, "torch": torch.__version__})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
