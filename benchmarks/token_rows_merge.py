"""Generation of an adapted-tokenizer LoRA run with its new token rows copied into the weights
once at loading (:func:`bashkir_peft.models.vocab.merge_token_rows`, what ``load_trained`` now
does) against peft's copy of the whole matrix on every forward call: the same continuations,
and the generation's time.

Reruns the run's own generation stage (its ``generate.json`` parameters: prompts, decoding,
seed) twice into temporary folders, rows copied per call (``merge_token_rows`` replaced by a
no-op) and rows merged at loading, in that order, and compares each one's continuations with
the run's stored ``generations.parquet``.

Usage:
    .venv/bin/python benchmarks/token_rows_merge.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def generate(run_dir: Path, out: Path, merged: bool) -> tuple[dict, list[str]]:
    """Run the generation stage of ``run_dir`` into ``out``; returns its cost and continuations."""
    import pandas as pd

    from bashkir_peft.config.generate import GenerateParams
    from bashkir_peft.generate.run import run_generation
    from bashkir_peft.models import trained

    stored = json.loads((run_dir / "generate.json").read_text(encoding="utf-8"))["params"]
    params = GenerateParams.model_validate(stored | {"output_dir": str(out)})
    keep = trained.merge_token_rows
    if not merged:
        trained.merge_token_rows = lambda model: 0
    try:
        record = run_generation(params)
    finally:
        trained.merge_token_rows = keep
    texts = pd.read_parquet(out / "generations.parquet")["continuation"].tolist()
    return record.cost.model_dump(), texts


def main() -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path, help="a finished LoRA run with an adapted tokenizer and its generation")
    a = ap.parse_args()
    if not (a.run_dir / "generations.parquet").is_file() or not (a.run_dir / "tokenizer").is_dir():
        ap.error(f"{a.run_dir}: not an adapted-tokenizer run with its generations (generations.parquet, tokenizer/)")
    stored = pd.read_parquet(a.run_dir / "generations.parquet")["continuation"].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        for merged in (False, True):
            cost, texts = generate(a.run_dir, Path(tmp) / str(merged), merged)
            print(f"rows {'merged at loading' if merged else 'copied per call  '}: generate "
                  f"{cost['generate_time_s']:6.1f} s, {cost['new_tokens']} new tokens, "
                  f"{cost['new_tokens_per_s']:5.1f} tokens/s, {cost['words_per_s']:4.2f} words/s; "
                  f"continuations equal to the run's stored ones: {texts == stored} "
                  f"({sum(x == y for x, y in zip(texts, stored))}/{len(stored)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
