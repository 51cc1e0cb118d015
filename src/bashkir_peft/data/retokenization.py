"""The texts an adapted tokenizer's re-tokenization is measured on, and protected samples.

Re-tokenization (:func:`bashkir_peft.models.retokenization.segmentation_change`) is measured on
held-out parallel text that no adaptation may see: the FLORES-200 devtest English, Russian,
Tatar and Bashkir sides (``../shared/eval/flores200``, one sentence a line, gzip; NLLB Team
2022) and the SIB-200 English, Russian and Bashkir sides (every split; their sentences are
FLORES-200 dev and devtest sentences). Only shares are recorded, never a sentence (the
FLORES licence note in ``../shared/eval/flores200/README.md``).

Text samples of other languages (:class:`~bashkir_peft.config.tokenizer.TextSample`: protected or
replayed text) are read here too, and replay is mixed into the training split.
"""

from __future__ import annotations

import functools
import gzip
import random
from collections.abc import Sequence
from pathlib import Path

from bashkir_peft.config.tokenizer import TextSample
from bashkir_peft.data.sib200 import SIB200_SPLITS, read_sib200_split
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.jsonl import iter_json_lines
from bashkir_peft.models.retokenization import segmentation_change
from bashkir_peft.settings import resolve_path

RETOKENIZATION_SIDES: dict[str, tuple[str, str]] = {
    "flores-eng": ("flores200", "../shared/eval/flores200/eng_Latn.devtest.gz"),
    "flores-rus": ("flores200", "../shared/eval/flores200/rus_Cyrl.devtest.gz"),
    "flores-tat": ("flores200", "../shared/eval/flores200/tat_Cyrl.devtest.gz"),
    "flores-bak": ("flores200", "../shared/eval/flores200/bak_Cyrl.devtest.gz"),
    "sib200-eng": ("sib200", "../shared/eval/sib200/eng_Latn"),
    "sib200-rus": ("sib200", "../shared/eval/sib200/rus_Cyrl"),
    "sib200-bak": ("sib200", "../shared/eval/sib200/bak_Cyrl"),
}
"""Side name -> (format, path from the repository root): the texts every adapted tokenizer's
re-tokenization is measured on (a side whose file is absent on a machine is left out)."""


def read_flores_side(path: str | Path) -> list[str]:
    """The sentences of one FLORES-200 side (gzip, one sentence a line), stripped.

    Raises:
        DataError: the file is missing or empty.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such FLORES-200 file")
    with gzip.open(p, "rt", encoding="utf-8") as fh:
        lines = [line.strip() for line in fh]
    if not any(lines):
        raise DataError(f"{p}: no sentences")
    return lines


@functools.lru_cache(maxsize=16)
def read_side(fmt: str, path: Path) -> tuple[str, ...]:
    """The texts of one side: ``flores200`` (a devtest file) or ``sib200`` (a language folder,
    train + dev + test); read once per process (the files are read-only shared data)."""
    if fmt == "flores200":
        return tuple(read_flores_side(path))
    return tuple(t for s in SIB200_SPLITS for t in read_sib200_split(path, s)["text"])


def retokenization(base, adapted, sides: dict[str, tuple[str, str]] | None = None) -> dict[str, dict]:
    """Re-tokenization of every available side under ``adapted`` against ``base``.

    Args:
        base, adapted: the base and the adapted tokenizer.
        sides: side name -> (format, path); ``None`` = :data:`RETOKENIZATION_SIDES`. Sides whose
            file or folder does not exist are left out.

    Returns:
        side name -> :func:`~bashkir_peft.models.retokenization.segmentation_change`'s shares.
    """
    out = {}
    for name, (fmt, path) in (RETOKENIZATION_SIDES if sides is None else sides).items():
        p = resolve_path(path)
        if p.exists():
            out[name] = segmentation_change(base, adapted, read_side(fmt, p))
    return out


def read_samples(entries: Sequence[TextSample]) -> list[str]:
    """The documents of text sample files (protected or replayed text).

    Raises:
        DataError: a missing or unreadable file.
        ConfigError: an entry that yields no text (e.g. no record of its ``lang``).
    """
    texts: list[str] = []
    for entry in entries:
        path = resolve_path(entry.path)
        if not path.is_file():
            raise DataError(f"text sample {entry.path}: no such file ({path})")
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            found = [v["text"] for _, v in iter_json_lines(path)
                     if isinstance(v, dict) and isinstance(v.get("text"), str)
                     and (entry.lang is None or v.get("lang") == entry.lang)]
        else:
            found = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not found:
            raise ConfigError(f"text sample {entry.path}" + (f" (lang {entry.lang})" if entry.lang else "")
                              + ": no text in it")
        texts += found
    return texts


def mix_replay(texts: list[str], replay: Sequence[str], share: float, seed: int = 0) -> tuple[list[str], dict]:
    """The training documents with replayed documents of other languages appended, so that
    replay makes ``share`` of the UTF-8 bytes (documents drawn in a seeded random order, cycled
    when the sample is smaller than the share asks; the last one may overshoot).

    Args:
        texts: the training split's documents.
        replay: the replay sample's documents (:func:`read_samples`).
        share: the replayed share of bytes, in [0, 1).
        seed: seed of the order of replayed documents.

    Returns:
        ``(documents, {"documents", "bytes", "share"})``: the mixed documents (training first)
        and what was replayed (``share`` as reached).
    """
    own = sum(len(t.encode("utf-8")) for t in texts)
    target = own * share / (1 - share)
    order = list(range(len(replay)))
    random.Random(seed).shuffle(order)
    mixed, nbytes, i = [], 0, 0
    while replay and nbytes < target:
        doc = replay[order[i % len(order)]]
        mixed.append(doc)
        nbytes += len(doc.encode("utf-8"))
        i += 1
    return texts + mixed, {"documents": len(mixed), "bytes": nbytes, "share": nbytes / (own + nbytes) if own + nbytes else 0.0}
