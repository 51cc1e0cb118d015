"""Short GPU check (``make gpu-check``; well under 5 minutes on one GPU).

1. The gpu-marked tests (``pytest -m gpu``), which are skipped on CPU-only machines.
2. About 20 bf16 QLoRA steps of smollm2-135m (4-bit NF4 + double quantization, compute
   dtype bf16, paged AdamW 32-bit, the same ``run_training`` as the notebooks), printing
   the median step time, tokens/s and peak GPU memory (``torch.cuda.max_memory_allocated``).

Exit status: 0 when both pass, 1 otherwise, 2 without CUDA.

Usage:
    BASHKIR_PEFT_TOKENIZERS=../shared/tokenizers .venv/bin/python benchmarks/gpu_check.py [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def gpu_tests() -> int:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(REPO / "tests")]
    print("$", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    # 5 = no tests collected (no gpu-marked tests): not a failure of the GPU path
    return 0 if rc in (0, 5) else rc


def qlora_steps(steps: int, block_size: int, batch: int, corpus: Path) -> int:
    import torch

    from bashkir_peft.train.callbacks import StepTimer
    from bashkir_peft.train.run import TrainParams, run_training
    from train_throughput import make_data

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_data(corpus, Path(tmp) / "data")
        timer = StepTimer()
        params = TrainParams(model="smollm2-135m", method="qlora", block_size=block_size,
                             per_device_train_batch_size=batch, max_steps=steps, eval_steps=steps,
                             save_steps=steps, logging_steps=5, max_eval_documents=2, data_dir=str(data_dir),
                             output_dir=str(Path(tmp) / "run"))
        t0 = time.perf_counter()
        record = run_training(params, callbacks=[timer])
        wall = time.perf_counter() - t0
    ok = (record.status == "finished" and record.compute_dtype == "bfloat16"
          and record.optimizer.startswith("paged_adamw"))
    timed = timer.step_times[2:] or timer.step_times
    med = statistics.median(timed)
    print(f"QLoRA smollm2-135m on {torch.cuda.get_device_name(0)}: {record.global_step} steps, "
          f"batch {batch} x block {block_size}, compute {record.compute_dtype}, optimizer {record.optimizer}")
    print(f"  median step time {med * 1000:.1f} ms (after 2 warm-up steps), {batch * block_size / med:,.0f} tokens/s")
    print(f"  peak GPU memory (max allocated) {record.cost.peak_gpu_mib:.0f} MiB; "
          f"final validation loss {record.final_eval.eval_loss if record.final_eval else None}; wall {wall:.1f} s")
    print(f"  status {record.status} {record.reason or ''}")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "bashkir-demo.jsonl.gz")
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device (torch.cuda.is_available() is False); nothing to check", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rc_tests = gpu_tests()
    rc_steps = qlora_steps(a.steps, a.block_size, a.batch, a.corpus)
    print(f"gpu-check: tests {'ok' if rc_tests == 0 else 'FAILED'}, QLoRA steps {'ok' if rc_steps == 0 else 'FAILED'}"
          f" ({time.perf_counter() - t0:.0f} s)")
    return 0 if rc_tests == rc_steps == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
