"""LoRA dropout, peft's nn.Dropout against the bulk-bits BulkDropout: time of forward + backward
over the inputs of one training step's LoRA layers (SmolLM2-135M, batch 8 x block 128: per
layer 6 projections with 576 inputs and one with 1,536; 30 layers).

The two run in turns, ``--rounds`` times, so both see the same machine; the figure is the
median over rounds of one step's dropout time (forward + backward through every LoRA input).

``--model-steps N``: whole steps instead (SmolLM2-135M with LoRA r=8 on the registry's target
modules, batch 8 x block 128 of random tokens, forward + backward, no optimizer), one model
whose LoRA dropout modules are swapped between nn.Dropout and BulkDropout step by step, N steps
each; the figure is the median over adjacent pairs of (nn.Dropout step time / BulkDropout step
time), which a drifting shared machine disturbs least.

Usage:
    .venv/bin/python benchmarks/lora_dropout.py [--rounds 5] [--p 0.05] [--threads 2] [--model-steps 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bashkir_peft.models.dropout import BulkDropout, use_bulk_dropout

ROWS = 8 * 128
FEATURES = [576] * 6 + [1536]  # q, k, v, o, gate, up | down (SmolLM2-135M)
LAYERS = 30


def step_seconds(module: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Seconds for forward + backward of ``module`` over ``inputs`` (one step's LoRA inputs)."""
    start = time.perf_counter()
    for x in inputs:
        module(x).sum().backward()
    return time.perf_counter() - start


def model_steps(steps: int, p: float) -> None:
    """Whole forward + backward steps, the two dropouts alternating (module docstring)."""
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.models.lora import apply_lora
    from bashkir_peft.models.registry import get_entry

    model = apply_lora(load_model("smollm2-135m", "lora").model, get_entry("smollm2-135m").target_modules,
                       lora_dropout=p).train()
    modules = [(d, name) for d in model.modules() if isinstance(getattr(d, "lora_dropout", None), torch.nn.ModuleDict)
               for name in d.lora_dropout]
    torch_dropouts = {id(d): d.lora_dropout[name] for d, name in modules}
    ids = torch.randint(model.config.vocab_size, (8, 128))

    def step() -> float:
        t0 = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def use(kind: str) -> None:
        if kind == "BulkDropout":
            use_bulk_dropout(model)
        else:
            for d, name in modules:
                d.lora_dropout[name] = torch_dropouts[id(d)]

    times = {"nn.Dropout": [], "BulkDropout": []}
    for kind in times:
        use(kind)
        step()  # warm-up
    for i in range(steps):
        for kind in (("nn.Dropout", "BulkDropout") if i % 2 == 0 else ("BulkDropout", "nn.Dropout")):
            use(kind)
            times[kind].append(step())
    ratios = [a / b for a, b in zip(times["nn.Dropout"], times["BulkDropout"])]
    print(f"SmolLM2-135M LoRA r=8, batch 8 x 128, forward + backward, {steps} steps each, "
          f"{torch.get_num_threads()} threads:")
    for kind, ts in times.items():
        print(f"  {kind:12s} median {statistics.median(ts):.2f} s  ({' '.join(f'{t:.2f}' for t in ts)})")
    print(f"  paired speed-up (median of nn.Dropout / BulkDropout over adjacent steps): {statistics.median(ratios):.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--p", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-steps", type=int, default=0, help="whole SmolLM2 steps per dropout (0: the micro-benchmark)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.model_steps:
        model_steps(a.model_steps, a.p)
        return
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
