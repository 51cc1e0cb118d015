"""The token bigram floor over the base tokenizer and over an adapted tokenizer (a run's
``tokenizer/`` folder), both counted on a prepared data folder's training split and scored on its
test split (bits per byte, every byte), and the time the generate stage now spends building the
training split's lexicon: the numbers of benchmarks/RESULTS.md, issue 27 (second part).

Prints one line per tokenizer and one for the lexicon; writes nothing.

    .venv/bin/python benchmarks/adapted_bigram_floor.py /work/runs-after/cpu-demo/data \\
        /work/runs-after/cpu-demo/smollm2-135m-lora-r8-s42-bak16k-4ce8fba8d6e6/tokenizer --model smollm2-135m
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    from transformers import AutoTokenizer

    from bashkir_peft.data.fertility import load_profile_tokenizer
    from bashkir_peft.data.folder import load_split
    from bashkir_peft.evaluate.ngram import TokenBigram
    from bashkir_peft.generate.words import training_lexicon

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("adapted", type=Path, help="an adapted tokenizer's folder (a run's tokenizer/)")
    ap.add_argument("--model", default="smollm2-135m", help="the base model, whose tokenizer is the other")
    args = ap.parse_args()

    train = [str(t) for t in load_split(args.data_dir, "train")["text"]]
    test = [str(t) for t in load_split(args.data_dir, "test")["text"]]
    nbytes = sum(len(x.encode()) for x in test)
    for name, tok in (("base", load_profile_tokenizer(args.model)[0]),
                      ("adapted", AutoTokenizer.from_pretrained(args.adapted))):
        t = time.perf_counter()
        ids = tok(train, add_special_tokens=False)["input_ids"]
        bigram = TokenBigram.fit(ids, vocab_size=len(tok), unk=tok.unk_token_id)
        fit_s = time.perf_counter() - t
        test_ids = tok(test, add_special_tokens=False)["input_ids"]
        bits = sum(bigram.surprisals(s).sum() for s in test_ids)
        print(f"{name} tokenizer ({len(tok):,} tokens; {sum(map(len, ids)):,} training tokens): fitted in {fit_s:.1f} s; "
              f"test split ({len(test)} documents, {sum(map(len, test_ids)):,} tokens): "
              f"{bits / nbytes:.4f} bits/byte", flush=True)
    t = time.perf_counter()
    lexicon, docs = training_lexicon(args.data_dir)
    print(f"lexicon of the training split ({docs} documents): {len(lexicon.forms):,} forms in "
          f"{time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
