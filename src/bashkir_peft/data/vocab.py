"""Tokenizer adaptation on the prepared data: a byte-level BPE trained on the training split
only, its first K new tokens appended to the base tokenizer (:mod:`bashkir_peft.models.vocab`),
and the tokenizer's profile (:mod:`bashkir_peft.data.fertility`) before and after.

Serves the training stage (notebooks/02_train.ipynb) when a run sets ``tokenizer``; the
adapted tokenizer is saved in the run folder (``RUN_DIR/tokenizer``, and with the weights in
``final/``), so evaluation, generation and a resumed run use the same one.
"""

from __future__ import annotations

import json
from pathlib import Path

from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.data.fertility import profile_texts
from bashkir_peft.data.folder import load_texts
from bashkir_peft.data.retokenization import read_samples, retokenization
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.retokenization import segmentation_change
from bashkir_peft.models.vocab import extend_tokenizer, resize_and_init

PROFILE_KEYS = ("fertility", "chars_per_token", "bytes_per_token")
PROTECTION_FILE = "protection.json"
"""Beside a saved adapted tokenizer with protected text: how many merges protection dropped."""


def train_bpe(base, texts: list[str], vocab_size: int):
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts`` with the base tokenizer's
    normalizer and pre-tokenizer (transformers ``train_new_from_iterator``, HF ``tokenizers``)."""
    return base.train_new_from_iterator(texts, vocab_size)


def adapt_tokenizer(data_dir: str | Path, base, setting: TokenizerAdaptation, out_dir: str | Path | None = None,
                    sides: dict[str, tuple[str, str]] | None = None):
    """Train a BPE on ``data_dir``'s training split and extend ``base`` with K of its tokens.

    Args:
        data_dir: a prepared data folder (its ``train`` split is the BPE's only input).
        base: the base model's fast byte-level BPE tokenizer.
        setting: K, the BPE size, the initialization method and the protected texts (recorded,
            used by training).
        out_dir: where to save the adapted tokenizer (``None``: not saved). A folder that
            already holds one is read back instead (a resumed run keeps its tokenizer).
        sides: the held-out sides re-tokenization is measured on (name -> (format, path));
            ``None`` = :data:`~bashkir_peft.data.retokenization.RETOKENIZATION_SIDES`, ``{}`` = none.

    Returns:
        ``(tokenizer, added, info)``: the adapted tokenizer, its new tokens in id order, and
        ``info`` = the setting plus ``new_tokens_added``, ``base_vocab_size``, ``vocab_size``,
        the training split's profile (fertility, characters and bytes per token) under the base
        (``train_before``) and the adapted tokenizer (``train_after``), the re-tokenization of
        the held-out sides (``retokenized``, :func:`~bashkir_peft.data.retokenization.retokenization`)
        and, with protected text, ``protection`` (merges dropped, protected documents and the
        share of them cut exactly as before).

    Raises:
        DataError: the data folder is incomplete, or a protected text file is missing.
        ConfigError: the base tokenizer is not a byte-level BPE, the BPE yields fewer than K
            new tokens (raise ``bpe_vocab_size``), or a protected entry holds no text.
    """
    from transformers import AutoTokenizer

    protected = read_samples(setting.protect)
    texts = load_texts(data_dir, "train")
    saved = Path(out_dir) if out_dir is not None else None
    if saved is not None and (saved / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(saved)
        added = tokenizer.convert_ids_to_tokens(list(range(len(base), len(tokenizer))))
        dropped = json.loads((saved / PROTECTION_FILE).read_text(encoding="utf-8"))["merges_dropped"] if protected else 0
    else:
        trained = train_bpe(base, texts, setting.resolved_bpe_vocab_size)
        tokenizer, added, dropped = extend_tokenizer(base, trained, setting.new_tokens, protected)
        if len(added) < setting.new_tokens:
            raise ConfigError(f"a BPE of {setting.resolved_bpe_vocab_size} tokens gives only {len(added)} new tokens, "
                              f"fewer than new_tokens={setting.new_tokens}: raise bpe_vocab_size")
        if saved is not None:
            tokenizer.save_pretrained(saved)
            if protected:
                (saved / PROTECTION_FILE).write_text(json.dumps({"merges_dropped": dropped}), encoding="utf-8")
    before, after = profile_texts(texts, base), profile_texts(texts, tokenizer)
    info = {**setting.for_run_id(), "bpe_vocab_size": setting.resolved_bpe_vocab_size,
            "new_tokens_added": len(added), "base_vocab_size": len(base), "vocab_size": len(tokenizer),
            "train_before": {k: before[k] for k in PROFILE_KEYS},
            "train_after": {k: after[k] for k in PROFILE_KEYS},
            "retokenized": retokenization(base, tokenizer, sides)}
    if protected:
        info["protection"] = {"merges_dropped": dropped, "documents": len(protected),
                              "unchanged": segmentation_change(base, tokenizer, protected)["texts_unchanged"]}
    return tokenizer, added, info


def adapt_model(model, base, setting: TokenizerAdaptation, data_dir: str | Path, out_dir: str | Path, seed: int = 0):
    """Adapt the tokenizer (:func:`adapt_tokenizer`, saved in ``out_dir``) and grow ``model``'s
    embeddings and LM head to it, new rows initialized by ``setting.init``
    (:func:`bashkir_peft.models.vocab.resize_and_init`).

    Returns:
        ``(tokenizer, new_ids, info)``: ``info`` is :func:`adapt_tokenizer`'s plus ``tied``
        and ``new_rows``.

    Raises:
        as :func:`adapt_tokenizer`; RuntimeError: the resized embeddings and head disagree.
    """
    tokenizer, added, info = adapt_tokenizer(data_dir, base, setting, out_dir)
    texts = load_texts(data_dir, "train") if setting.init == "focus" else ()
    grown = resize_and_init(model, base, tokenizer, added, setting.init, seed, texts)
    ids = tokenizer.convert_tokens_to_ids(added)
    focus = {k: v for k, v in grown.items() if k.startswith("focus_")}
    return tokenizer, ids, info | {"tied": grown["tied"], "new_rows": grown["new_rows"]} | (
        {"focus": focus} if focus else {})
