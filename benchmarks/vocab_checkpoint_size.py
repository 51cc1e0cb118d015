"""What a LoRA run with an adapted tokenizer writes to disk (issue 32): the adapter file of its
checkpoint and of its final adapter, the optimizer state, and the non-LoRA tensors each holds.

Usage (from the repository root; a prepared data folder, e.g. a copy of RUNS/cpu-demo/data):

    .venv/bin/python benchmarks/vocab_checkpoint_size.py --data-dir DATA --out /tmp/ckpt [--model tiny-qwen2]

A tiny model (random weights, hidden 32) with K new tokens, 2 optimizer steps, a checkpoint at
step 2; or a finished run folder with ``--run RUN_DIR`` (its checkpoints and ``final/``).
Sizes in bytes, from the files; deterministic (no timing).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def tensors(path: Path) -> dict[str, list[int]]:
    """The shapes of a safetensors file's tensors, from its header."""
    with path.open("rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    header.pop("__metadata__", None)
    return {k: v["shape"] for k, v in header.items()}


def describe(run: Path) -> dict:
    """Bytes of each checkpoint's and the final adapter file (and optimizer state), and the
    shapes of the tensors that are not LoRA's."""
    out = {}
    for folder in sorted((run / "checkpoints").glob("checkpoint-*")) + [run / "final"]:
        adapter = folder / "adapter_model.safetensors"
        if not adapter.is_file():
            continue
        optimizer = folder / "optimizer.pt"
        out[folder.name] = {"adapter_bytes": adapter.stat().st_size,
                            "optimizer_bytes": optimizer.stat().st_size if optimizer.is_file() else None,
                            "not_lora": {k: s for k, s in tensors(adapter).items() if "lora_" not in k}}
    return out


def train(data_dir: str, out: str, model: str, new_tokens: int) -> Path:
    from bashkir_peft.train.run import run_training

    run = Path(out) / model
    record = run_training({"model": model, "method": "lora", "data_dir": data_dir, "output_dir": str(run),
                           "block_size": 16, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 16,
                           "max_steps": 2, "save_steps": 2, "eval_steps": 2, "logging_steps": 1,
                           "max_eval_documents": 2,
                           "tokenizer": {"new_tokens": new_tokens, "bpe_vocab_size": 2000}})
    assert record.status == "finished", record.reason
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--out")
    ap.add_argument("--model", default="tiny-qwen2")
    ap.add_argument("--new-tokens", type=int, default=150)
    ap.add_argument("--run", help="describe this finished run folder instead of training one")
    args = ap.parse_args()
    run = Path(args.run) if args.run else train(args.data_dir, args.out, args.model, args.new_tokens)
    print(json.dumps({"run": run.name, **describe(run)}, indent=1))


if __name__ == "__main__":
    main()
