"""QLoRA on the CPU: what would dequantizing each 4-bit weight once per step (and reusing it in
the backward pass) save? Times bitsandbytes' NF4 dequantization of every weight matrix of
SmolLM2-135M's decoder layers against the matrix products of one training step that use it.

bitsandbytes' ``MatMul4Bit`` dequantizes a weight in the forward pass (``x @ W^T``) and again
in the backward pass (``grad @ W``, for the input's gradient; the frozen weight gets none):
two dequantizations and two products of ``rows x in x out`` per weight per step (four with
full fine-tuning's weight gradient, which QLoRA does not compute). Keeping the forward's
dequantized float32 weight for the backward saves one dequantization per weight per step and
costs its float32 size in memory until the backward pass (4 bytes per weight: 0.5 GB for
SmolLM2-135M's 106 M decoder weights, held at once at the end of the forward pass).

Usage:
    .venv/bin/python benchmarks/qlora_dequant.py [--rows 1024] [--threads 2] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

# SmolLM2-135M decoder layer: q, o (576 x 576), k, v (192 x 576), gate, up (1536 x 576),
# down (576 x 1536), as (out, in); 30 layers.
SHAPES = [(576, 576)] * 2 + [(192, 576)] * 2 + [(1536, 576)] * 2 + [(576, 1536)]
LAYERS = 30


def median_seconds(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import bitsandbytes.functional as bnbf

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1024, help="tokens per step (batch x block_size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dequant = matmul = 0.0
    for out_f, in_f in SHAPES:
        w = torch.randn(out_f, in_f)
        packed, state = bnbf.quantize_4bit(w, quant_type="nf4", compress_statistics=True)
        x = torch.randn(a.rows, in_f)
        dequant += median_seconds(lambda: bnbf.dequantize_4bit(packed, state), a.reps)
        matmul += median_seconds(lambda: x @ w.t(), a.reps)
    dequant, matmul = dequant * LAYERS, matmul * LAYERS
    print(f"SmolLM2-135M decoder weights, {a.rows} rows, {a.threads} threads, median of {a.reps}:")
    print(f"  one NF4 dequantization of every weight: {dequant:.3f} s")
    print(f"  one forward product of every weight:    {matmul:.3f} s")
    print(f"  a QLoRA step's products on these weights (forward + input gradient): {2 * matmul:.3f} s; "
          f"its dequantizations: {2 * dequant:.3f} s; reuse would save {dequant:.3f} s "
          f"({dequant / (2 * matmul + 2 * dequant):.1%} of products + dequantizations)")


if __name__ == "__main__":
    main()
