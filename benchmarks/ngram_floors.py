"""n-gram floors of a prepared data folder's training split on FLORES-200 devtest (Goldfish
protocol: bits per sentence on the second halves) and on the folder's test split (bits per
byte of every byte), beside the published table: the numbers of benchmarks/RESULTS.md, issue 27.

The same N evenly spaced devtest sentences as benchmarks/flores_goldfish.py. Prints one line
per floor and set, with the fitting and scoring times; writes no text anywhere.

    .venv/bin/python benchmarks/ngram_floors.py /work/runs-after/cpu-demo/data --model smollm2-135m -n 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    from bashkir_peft.config.external import ExternalSet
    from bashkir_peft.data.external import load_external
    from bashkir_peft.data.fertility import load_profile_tokenizer
    from bashkir_peft.data.folder import load_split
    from bashkir_peft.evaluate.ngram import ByteKneserNey, TokenBigram
    from bashkir_peft.report.floors import BYTE_ORDER, goldfish_bigram_bits, goldfish_byte_bits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--model", default="smollm2-135m", help="whose tokenizer the bigram counts")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--max-test", type=int, default=None, help="test documents (default: all)")
    args = ap.parse_args()

    train = [str(t) for t in load_split(args.data_dir, "train")["text"]]
    t = time.perf_counter()
    byte_lm = ByteKneserNey.fit(train, order=BYTE_ORDER)
    print(f"byte Kneser-Ney order {BYTE_ORDER}: fitted on {len(train)} documents, "
          f"{sum(len(x.encode()) for x in train):,} bytes in {time.perf_counter() - t:.1f} s", flush=True)
    tok, _ = load_profile_tokenizer(args.model)
    t = time.perf_counter()
    bigram = TokenBigram.fit(tok(train, add_special_tokens=False)["input_ids"], len(tok), tok.unk_token_id)
    print(f"token bigram ({args.model} tokens): fitted in {time.perf_counter() - t:.1f} s", flush=True)
    test = [str(x) for x in load_split(args.data_dir, "test")["text"]][: args.max_test]
    nbytes = sum(len(x.encode()) for x in test)
    ids = tok(test, add_special_tokens=False)["input_ids"]
    print(f"test split ({len(test)} documents): byte KN {byte_lm.bits(test).sum() / nbytes:.4f} bits/byte, "
          f"bigram {sum(bigram.surprisals(s).sum() for s in ids) / nbytes:.4f} bits/byte "
          f"(normalized {sum(bigram.surprisals(s, True).sum() for s in ids) / nbytes:.4f})", flush=True)
    flores = REPO / "../shared/eval/flores200"
    for side in ("bak_Cyrl", "eng_Latn", "rus_Cyrl", "tat_Cyrl"):
        docs = load_external(ExternalSet(name=f"flores-{side[:3]}", format="lines",
                                         path=str(flores / f"{side}.devtest.gz"), max_documents=args.n))
        t = time.perf_counter()
        kb, kn = goldfish_byte_bits(byte_lm, docs.texts)
        bb, bn = goldfish_bigram_bits(bigram, tok, docs.texts)
        n = len(docs.texts)
        print(f"{side} ({n} sentences, goldfish): byte KN {kb / n:.1f} bits/sentence ({kb / kn:.4f} bits/byte of "
              f"the halves), bigram {bb / n:.1f} bits/sentence ({bb / bn:.4f} bits/byte), "
              f"{time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
