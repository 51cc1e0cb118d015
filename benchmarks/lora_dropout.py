"""LoRA dropout, peft's nn.Dropout against the bulk-bits BulkDropout: time of forward + backward
over the inputs of one training step's LoRA layers (SmolLM2-135M, batch 8 x block 128: per
layer 6 projections with 576 inputs and one with 1,536; 30 layers).

The two run in turns, ``--rounds`` times, so both see the same machine; the figure is the
median over rounds of one step's dropout time (forward + backward through every LoRA input).

Usage:
    .venv/bin/python benchmarks/lora_dropout.py [--rounds 5] [--p 0.05] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bashkir_peft.models.dropout import BulkDropout

ROWS = 8 * 128
FEATURES = [576] * 6 + [1536]  # q, k, v, o, gate, up | down (SmolLM2-135M)
LAYERS = 30


def step_seconds(module: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Seconds for forward + backward of ``module`` over ``inputs`` (one step's LoRA inputs)."""
    start = time.perf_counter()
    for x in inputs:
        module(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--p", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    inputs = [torch.randn(ROWS, f, requires_grad=True) for f in FEATURES] * LAYERS
    modules = {"nn.Dropout": torch.nn.Dropout(a.p).train(), "BulkDropout": BulkDropout(a.p).train()}
    for m in modules.values():
        step_seconds(m, inputs[:7])  # warm-up
    times = {name: [] for name in modules}
    for _ in range(a.rounds):
        for name, m in modules.items():
            times[name].append(step_seconds(m, inputs))
    print(f"{len(inputs)} LoRA inputs ({ROWS} rows; {sum(FEATURES) * LAYERS * ROWS / 1e6:.0f} M elements), "
          f"p = {a.p}, {a.threads} threads, {a.rounds} rounds; seconds per step (forward + backward):")
    for name, ts in times.items():
        print(f"  {name:12s} median {statistics.median(ts):.3f}  (min {min(ts):.3f}, max {max(ts):.3f})")
    ratio = statistics.median(times["nn.Dropout"]) / statistics.median(times["BulkDropout"])
    print(f"  speed-up (median nn.Dropout / median BulkDropout): {ratio:.2f}x")


if __name__ == "__main__":
    main()
