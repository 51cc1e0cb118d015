"""Vocabulary adaptation that keeps what the model knew (issue 32): re-tokenization with and
without protected text, the adapted model before any training, and the runs compared.

Usage (from the repository root):

    .venv/bin/python benchmarks/vocab_protection.py retok --data-dir RUNS/cpu-demo/data --out /tmp/tok
    .venv/bin/python benchmarks/vocab_protection.py init --data-dir RUNS/cpu-demo/data --tokenizer /tmp/tok/unprotected
    .venv/bin/python benchmarks/vocab_protection.py runs RUN_DIR [RUN_DIR ...]

``retok``: SmolLM2's tokenizer extended with 16,000 Bashkir tokens (BPE on the training split),
unprotected, and with the Russian and English records of ../shared/corpus/langid-sample.jsonl
protected (K = 3,800 from a 150,000-token BPE: what exact protection leaves); the training
split's fertility under each, and the re-tokenized shares of the held-out FLORES-200 devtest and
SIB-200 sides (:func:`bashkir_peft.data.retokenization.retokenization`). Shares only.
``init``: the adapted model before any training (rows initialised by ``--init``) against the base
model: bits per byte on the first ``--n`` test sentences of the SIB-200 Bashkir, English and
Russian sides, rolling protocol (as the grids' external sets).
``runs``: per run folder, bits per byte on the test split and the SIB-200 sides, the Bashkir
share of the generated words, generation words/s, training steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SAMPLE = "../shared/corpus/langid-sample.jsonl"
SIDES = {"bak": "bak_Cyrl", "eng": "eng_Latn", "rus": "rus_Cyrl"}


def retok(data_dir: str, out: str) -> None:
    from bashkir_peft.config.tokenizer import TextSample, TokenizerAdaptation
    from bashkir_peft.data.vocab import adapt_tokenizer
    from bashkir_peft.models.loading import load_tokenizer, resolve_model

    base = load_tokenizer(resolve_model("smollm2-135m"))
    settings = {
        "unprotected": TokenizerAdaptation(new_tokens=16000),
        "protected": TokenizerAdaptation(new_tokens=3800, bpe_vocab_size=150000,
                                         protect=[TextSample(path=SAMPLE, lang="rus"), TextSample(path=SAMPLE, lang="eng")]),
    }
    for name, setting in settings.items():
        start = time.perf_counter()
        _, added, info = adapt_tokenizer(data_dir, base, setting, Path(out) / name)
        print(json.dumps({"setting": name, "new_tokens": len(added), "seconds": round(time.perf_counter() - start, 1),
                          "train_fertility": [info["train_before"]["fertility"], info["train_after"]["fertility"]],
                          "protection": info.get("protection"), "retokenized": info["retokenized"]}))


def init(data_dir: str, tokenizer_dir: str, method: str, n: int) -> None:
    import torch
    from transformers import AutoTokenizer

    from bashkir_peft.data.folder import load_texts
    from bashkir_peft.data.sib200 import read_sib200_split
    from bashkir_peft.evaluate.run import score_rolling
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.models.vocab import resize_and_init

    texts = {k: list(read_sib200_split(REPO / "../shared/eval/sib200" / v, "test")["text"][:n]) for k, v in SIDES.items()}
    adapted = AutoTokenizer.from_pretrained(tokenizer_dir)
    for arm in ("base", "adapted"):
        loaded = load_model("smollm2-135m", "full")
        model, tok = loaded.model, loaded.tokenizer
        if arm == "adapted":
            added = adapted.convert_ids_to_tokens(list(range(len(tok), len(adapted))))
            resize_and_init(model, tok, adapted, added, method, seed=0,
                            texts=load_texts(data_dir, "train") if method == "focus" else ())
            tok = adapted
        model.eval()
        with torch.no_grad():
            for side, t in texts.items():
                s = score_rolling(model, tok, t)
                bpb = s["nll"].sum() / (s["bytes"].sum() * 0.6931471805599453)
                print(json.dumps({"arm": arm, "init": method if arm == "adapted" else None, "side": side,
                                  "sentences": len(t), "tokens": int(s["tokens"].sum()), "bits_per_byte": round(bpb, 4)}))


def runs(run_dirs: list[str]) -> None:
    print("| run | steps | test bpb | SIB bak bpb | SIB eng bpb | SIB rus bpb | Bashkir share of generated words | generation words/s |")
    print("|---|---|---|---|---|---|---|---|")
    for d in map(Path, run_dirs):
        ev = json.loads((d / "eval.json").read_text())["evaluations"]
        gen = json.loads((d / "generate.json").read_text())
        train = json.loads((d / "train.json").read_text()) if (d / "train.json").is_file() else {}
        bpb = {k.split("/")[1]: e["metrics"]["bits_per_byte"] for k, e in ev.items()}
        words = gen["summary"]["mean_words"] * gen["summary"]["n"]
        print(f"| {d.name} | {train.get('global_step', '-')} | {bpb.get('test', float('nan')):.3f} | "
              f"{bpb.get('sib200-bak', float('nan')):.3f} | {bpb.get('sib200-eng', float('nan')):.3f} | "
              f"{bpb.get('sib200-rus', float('nan')):.3f} | {gen['summary']['language_shares']['bak']:.2f} | "
              f"{words / gen['cost']['generate_time_s']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("retok")
    a.add_argument("--data-dir", required=True)
    a.add_argument("--out", required=True)
    b = sub.add_parser("init")
    b.add_argument("--data-dir", required=True)
    b.add_argument("--tokenizer", required=True)
    b.add_argument("--init", default="mean", choices=["mean", "random", "mean_resizing", "focus"])
    b.add_argument("--n", type=int, default=10)
    c = sub.add_parser("runs")
    c.add_argument("run_dirs", nargs="+")
    args = ap.parse_args()
    if args.cmd == "retok":
        retok(args.data_dir, args.out)
    elif args.cmd == "init":
        init(args.data_dir, args.tokenizer, args.init, args.n)
    else:
        runs(args.run_dirs)


if __name__ == "__main__":
    main()
