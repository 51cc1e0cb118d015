"""The language identifier on real Bashkir it has never seen, and on the labelled sample.

Prints (1) the share of the SIB-200 Bashkir sentences (FLORES-200 translations; all splits,
1,004 sentences; ../shared/eval/sib200/bak_Cyrl) with at least 20 letters that
:func:`bashkir_peft.text.langid.classify` labels non-Bashkir, by label, with those
sentences, and the same share for fastText lid.176 (the generation cross-check); (2) Bashkir, Russian and English precision and recall on
../shared/corpus/langid-sample.jsonl (:func:`bashkir_peft.text.langid.evaluate`).
SIB-200 is for measuring only: the rules are developed on corpus text. Run it with the
package of any commit to compare (PYTHONPATH=<that commit's src>).

    python benchmarks/langid_bashkir.py [--shared ../shared] [--show 10]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--min-letters", type=int, default=20)
    ap.add_argument("--show", type=int, default=10, help="non-Bashkir sentences to print")
    a = ap.parse_args(argv)

    from bashkir_peft.data.sib200 import read_sib200_split
    from bashkir_peft.text.langid import VERSION, classify, evaluate, letter_count, read_labelled

    bak = a.shared / "eval" / "sib200" / "bak_Cyrl"
    texts = [t for split in ("train", "dev", "test") for t in read_sib200_split(bak, split)["text"]]
    long = [t for t in texts if letter_count(t) >= a.min_letters]
    labels = [classify(t) for t in long]
    wrong = [(lab, t) for lab, t in zip(labels, long) if lab != "bak"]
    print(f"langid VERSION {VERSION}")
    print(f"SIB-200 bak_Cyrl: {len(texts)} sentences, {len(long)} with >= {a.min_letters} letters; "
          f"labelled non-Bashkir: {len(wrong)} = {len(wrong) / len(long):.2%} "
          f"({dict(Counter(lab for lab, _ in wrong))})")
    for lab, t in wrong[: a.show]:
        print(f"  {lab}: {t}")
    try:
        from bashkir_peft.text.crosscheck import fasttext_label
    except ImportError:  # a package before issue 13 has no cross-check
        fasttext_label = None
    if fasttext_label is not None:
        ft = Counter(fasttext_label(t) for t in long)
        print(f"fastText lid.176 on the same sentences: non-Bashkir {1 - ft['bak'] / len(long):.2%} ({dict(ft)})")
    scores, _ = evaluate(read_labelled(a.shared / "corpus" / "langid-sample.jsonl"))
    print(scores[["precision", "recall", "support", "predicted"]].round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
