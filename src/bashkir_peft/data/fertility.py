"""Tokenizer profiles on Bashkir text: fertility, bytes per token, characters per token.

Definitions (Rust et al., "How Good is Your Tokenizer?", ACL 2021, for fertility;
words are whitespace-separated as in lm-evaluation-harness' word perplexity):

- ``fertility`` = tokens / words
- ``bytes_per_token`` = UTF-8 bytes / tokens
- ``chars_per_token`` = characters / tokens

Tokenizer parity on parallel text (Petrov et al., "Language Model Tokenizers Introduce
Unfairness Between Languages", NeurIPS 2023): ``premium`` = tokens of the Bashkir side /
tokens of the English side of the same SIB-200 sentences (all 1,004 of train, dev and test;
1 = parity; 2 = a Bashkir sentence costs twice the tokens, context and compute of its English
translation).

Tokens are counted without special tokens. Tokenizers: each registry base model's
offline tokenizer (``ModelEntry.tokenizer_path()``; GPT-2 family models share one) and,
for entries with weights of their own (smollm2-135m), the tokenizer shipped with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bashkir_peft.atomic import write_parquet_atomic
from bashkir_peft.data.folder import load_split
from bashkir_peft.data.sib200 import SIB200_SPLITS, read_sib200_split
from bashkir_peft.errors import DataError
from bashkir_peft.models.loading import load_tokenizer, resolve_model
from bashkir_peft.models.registry import get_entry
from bashkir_peft.records import DataFiles
from bashkir_peft.settings import resolve_path


def load_profile_tokenizer(name: str):
    """The tokenizer of registry model ``name`` and a label of where it came from.

    Returns:
        ``(tokenizer, tokenizer_label)``.

    Raises:
        ConfigError: unknown name, missing tokenizer folder.
    """
    from transformers import AutoTokenizer

    entry = get_entry(name)
    if entry.tokenizer is not None:
        return AutoTokenizer.from_pretrained(entry.tokenizer_path()), entry.tokenizer

    return load_tokenizer(resolve_model(name)), f"{name} (shipped with the weights)"


def profile_texts(texts: Sequence[str], tokenizer, batch_size: int = 64) -> dict:
    """Token, word, character and byte totals of ``texts`` under ``tokenizer``.

    Returns:
        ``{"tokens", "words", "characters", "bytes", "fertility", "bytes_per_token",
        "chars_per_token"}``.
    """
    tokens = 0
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i : i + batch_size]), add_special_tokens=False)["input_ids"]
        tokens += sum(len(ids) for ids in enc)
    words = sum(len(t.split()) for t in texts)
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    return {
        "tokens": tokens, "words": words, "characters": chars, "bytes": nbytes,
        "fertility": tokens / words if words else float("nan"),
        "bytes_per_token": nbytes / tokens if tokens else float("nan"),
        "chars_per_token": chars / tokens if tokens else float("nan"),
    }


def sample_texts(texts: Sequence[str], max_chars: int) -> list[str]:
    """The first documents of ``texts`` up to ``max_chars`` characters in total (at least one)."""
    out, total = [], 0
    for t in texts:
        if out and total + len(t) > max_chars:
            break
        out.append(t)
        total += len(t)
    return out


def profile_tokenizers(texts: Sequence[str], models: Sequence[str], max_chars: int = 2_000_000):
    """Profile every model's tokenizer on the same texts.

    Args:
        texts: documents (e.g. the test split), in a fixed order.
        models: registry names.
        max_chars: profile the leading documents up to this many characters.

    Returns:
        DataFrame, one row per model: model, tokenizer, tokens, words, characters,
        bytes, fertility, bytes_per_token, chars_per_token.

    Raises:
        ConfigError: an unknown model or a missing tokenizer folder.
    """
    import pandas as pd

    sample = sample_texts(texts, max_chars)
    cache: dict[str, dict] = {}
    rows = []
    for name in models:
        tok, label = load_profile_tokenizer(name)
        if label not in cache:
            cache[label] = profile_texts(sample, tok)
        rows.append({"model": name, "tokenizer": label, **cache[label]})
    return pd.DataFrame(rows)




def parallel_sides(sib200_root: str | Path, language: str = "bak_Cyrl", pivot: str = "eng_Latn"):
    """The sentences of two parallel SIB-200 sides, every split, row k of one the translation
    of row k of the other.

    Returns:
        ``(texts of language, texts of pivot)``: two lists of equal length.

    Raises:
        DataError: a missing or malformed file, or sides whose ``index_id`` differ.
    """
    sides = {}
    for lang in (language, pivot):
        sides[lang] = [read_sib200_split(Path(sib200_root) / lang, split) for split in SIB200_SPLITS]
    for a, b, split in zip(sides[language], sides[pivot], SIB200_SPLITS):
        if list(a["index_id"]) != list(b["index_id"]):
            raise DataError(f"{sib200_root}: {language} and {pivot} {split} sentences are not parallel")
    return ([t for df in sides[language] for t in df["text"]], [t for df in sides[pivot] for t in df["text"]])


def parity_table(sib200_root: str | Path, models: Sequence[str], language: str = "bak_Cyrl",
                 pivot: str = "eng_Latn"):
    """Tokens of ``language`` over tokens of ``pivot`` on the same SIB-200 sentences, per tokenizer.

    Args:
        sib200_root: the SIB-200 folder holding one folder per language (``../shared/eval/sib200``);
            relative paths from the repository root.
        models: registry names (their tokenizers as in :func:`load_profile_tokenizer`).

    Returns:
        DataFrame, one row per model: model, sentences, tokens_bak, tokens_eng, premium
        (= tokens_bak / tokens_eng; Petrov et al. 2023).

    Raises:
        DataError: missing or non-parallel SIB-200 files.
        ConfigError: an unknown model or a missing tokenizer folder.
    """
    import pandas as pd

    ours, theirs = parallel_sides(resolve_path(sib200_root), language, pivot)
    cache: dict[str, tuple[int, int]] = {}
    rows = []
    for name in models:
        tok, label = load_profile_tokenizer(name)
        if label not in cache:
            cache[label] = (profile_texts(ours, tok)["tokens"], profile_texts(theirs, tok)["tokens"])
        a, b = cache[label]
        rows.append({"model": name, "sentences": len(ours), "tokens_bak": a, "tokens_eng": b, "premium": a / b})
    return pd.DataFrame(rows)


def profile_split(data_dir, models: Sequence[str], max_chars: int = 2_000_000, split: str = "test",
                  sib200_root: str | Path | None = None):
    """Profile ``models``' tokenizers on a prepared split and save the table next to it.

    Reads ``split`` of ``data_dir`` (documents in file order, up to ``max_chars``
    characters), writes ``data_dir/tokenizer_fertility.parquet`` atomically (the report
    reads it) and returns the table (see :func:`profile_tokenizers`; a ``split`` column added;
    with ``sib200_root``, the parity columns of :func:`parity_table` too).

    Raises:
        DataError: the data folder is incomplete; SIB-200 files missing or not parallel.
        ConfigError: an unknown model or missing tokenizer folder.
    """

    texts = load_split(data_dir, split)["text"]
    table = profile_tokenizers(texts, models, max_chars)
    table.insert(2, "split", split)
    if sib200_root is not None:
        table = table.merge(parity_table(sib200_root, models), on="model", how="left")
    write_parquet_atomic(table, Path(data_dir) / DataFiles.FERTILITY)
    return table
