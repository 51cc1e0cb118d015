"""Re-tokenization: how much of a text an adapted tokenizer cuts differently from its base.

An extended vocabulary (:mod:`bashkir_peft.models.vocab`) keeps every old token's id, so the
model sees a text exactly as before wherever the adapted tokenizer reproduces the base cut;
where it does not, the text arrives (partly) as new rows, initialised rather than learned.
Three shares, over texts tokenized without special tokens:

- ``changed_share``: base tokens whose byte span is not a token of the adapted cut
  (0 = the segmentation is unchanged; a token merged into a new one counts as changed);
- ``new_row_share``: adapted tokens that are new rows (id >= the base vocabulary size);
- ``texts_unchanged``: texts (sentences) whose ids are identical under both tokenizers.

Spans are read from the byte-level token strings (one character per UTF-8 byte), so the
measure needs byte-level BPE tokenizers, the only kind the extension supports.
"""

from __future__ import annotations

from collections.abc import Sequence

BATCH = 256


def _spans(tokens: list[str]) -> set[tuple[int, int]]:
    """The (start, end) byte offsets of consecutive byte-level token strings."""
    spans, start = set(), 0
    for t in tokens:
        spans.add((start, start + len(t)))
        start += len(t)
    return spans


def segmentation_change(base, adapted, texts: Sequence[str]) -> dict:
    """Compare the cuts of ``texts`` by ``base`` and by ``adapted`` (see module doc).

    Args:
        base: the base byte-level BPE tokenizer.
        adapted: the same tokenizer with an extended vocabulary (old ids unchanged).
        texts: the texts (e.g. the sentences of one FLORES-200 side), each cut as a whole.

    Returns:
        ``{"texts", "base_tokens", "adapted_tokens", "changed_share", "new_row_share",
        "texts_unchanged"}``; shares in [0, 1] (NaN where there are no tokens).

    Raises:
        ValueError: no texts.
    """
    if not texts:
        raise ValueError("segmentation_change needs at least one text")
    first_new = len(base)
    n_base = n_adapted = changed = new_rows = same = 0
    for i in range(0, len(texts), BATCH):
        batch = list(texts[i : i + BATCH])
        enc_b = base.backend_tokenizer.encode_batch(batch, add_special_tokens=False)
        enc_a = adapted.backend_tokenizer.encode_batch(batch, add_special_tokens=False)
        for b, a in zip(enc_b, enc_a):
            n_base += len(b.ids)
            n_adapted += len(a.ids)
            new_rows += sum(t >= first_new for t in a.ids)
            if a.ids == b.ids:
                same += 1
                continue
            changed += len(b.ids) - len(_spans(b.tokens) & _spans(a.tokens))
    nan = float("nan")
    return {"texts": len(texts), "base_tokens": n_base, "adapted_tokens": n_adapted,
            "changed_share": changed / n_base if n_base else nan,
            "new_row_share": new_rows / n_adapted if n_adapted else nan,
            "texts_unchanged": same / len(texts)}
