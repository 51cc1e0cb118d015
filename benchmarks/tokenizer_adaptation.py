"""Tokenizer adaptation on a prepared data folder: fertility and characters per token per K,
and test bits per byte of trained runs against training text, time and tokens.

Usage (from the repository root):

    .venv/bin/python benchmarks/tokenizer_adaptation.py profile --data-dir RUNS/cpu-demo/data --k 0 4000 16000
    .venv/bin/python benchmarks/tokenizer_adaptation.py runs RUN_DIR [RUN_DIR ...]

``profile``: for each K, the BPE trained on the training split only
(:func:`bashkir_peft.data.vocab.adapt_tokenizer`), profiled on the training and the test split
(:func:`bashkir_peft.data.fertility.profile_texts`; test = held-out text).
``runs``: one row per run folder: method, tokenizer, seed, training steps, tokens seen, UTF-8
bytes of training text seen (tokens seen x the training split's bytes per token under the run's
tokenizer), training wall time, test bits per byte, word perplexity and token perplexity
(rolling protocol; token perplexity does not compare across tokenizers), generation words/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def profile(data_dir: str, model: str, ks: list[int]) -> None:
    from bashkir_peft.config.tokenizer import TokenizerAdaptation
    from bashkir_peft.data.fertility import profile_texts
    from bashkir_peft.data.folder import load_texts
    from bashkir_peft.data.vocab import adapt_tokenizer
    from bashkir_peft.models.loading import load_tokenizer, resolve_model

    base = load_tokenizer(resolve_model(model))
    test = load_texts(data_dir, "test")
    print("| K | new tokens | vocabulary | split | fertility (tokens/word) | chars/token | bytes/token | BPE + extension s |")
    print("|---|---|---|---|---|---|---|---|")
    for k in ks:
        t0 = time.perf_counter()
        tok, added, info = adapt_tokenizer(data_dir, base, TokenizerAdaptation(new_tokens=k))
        seconds = time.perf_counter() - t0
        for split, prof in (("train", info["train_after"]), ("test", profile_texts(test, tok))):
            print(f"| {k} | {len(added)} | {len(tok)} | {split} | {prof['fertility']:.3f} | "
                  f"{prof['chars_per_token']:.3f} | {prof['bytes_per_token']:.3f} | {seconds:.1f} |")


def runs(run_dirs: list[str]) -> None:
    from transformers import AutoTokenizer

    from bashkir_peft.data.fertility import profile_texts
    from bashkir_peft.data.folder import load_texts
    from bashkir_peft.evaluate.run import read_metrics
    from bashkir_peft.records import GenerateRecord, RunFiles, TrainRecord, read_record

    print("| run | method | tokenizer | seed | steps | tokens seen | train bytes seen | train wall s | "
          "test bits/byte | word ppl | token ppl (not comparable) | gen words/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in map(Path, run_dirs):
        tr = read_record(d / RunFiles.TRAIN, TrainRecord)
        tok = AutoTokenizer.from_pretrained(d / RunFiles.FINAL)
        bpt = profile_texts(load_texts(tr.data.dir, "train"), tok)["bytes_per_token"]
        m = read_metrics(d)
        row = m[(m["protocol"] == "rolling") & (m["split"] == "test") & (m["source"] == "all")].iloc[0]
        gen = read_record(d / RunFiles.GENERATE, GenerateRecord)
        words = sum(len(t.split()) for t in _continuations(d))
        name = "base" if tr.vocab is None else f"K={tr.vocab.new_tokens} ({tr.vocab.init})"
        print(f"| {d.name} | {tr.params.method} | {name} | {tr.params.seed} | {tr.global_step} | "
              f"{tr.tokens_seen:,} | {tr.tokens_seen * bpt:,.0f} | {tr.cost.wall_time_s:.0f} | "
              f"{row['bits_per_byte']:.4f} | {row['word_perplexity']:.3g} | {row['perplexity']:.2f} | "
              f"{words / gen.cost.generate_time_s:.2f} |")


def _continuations(run_dir: Path) -> list[str]:
    import pandas as pd

    from bashkir_peft.records import RunFiles

    return pd.read_parquet(run_dir / RunFiles.GENERATIONS)["continuation"].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profile")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--k", type=int, nargs="+", default=[0, 4000, 16000])
    r = sub.add_parser("runs")
    r.add_argument("run_dirs", nargs="+")
    args = ap.parse_args()
    if args.cmd == "profile":
        profile(args.data_dir, args.model, args.k)
    else:
        runs(args.run_dirs)


if __name__ == "__main__":
    main()
