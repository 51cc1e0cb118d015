"""Vocabulary extension: new byte-level BPE tokens for a base tokenizer, and their embeddings.

Three steps, each one function:

1. :func:`extend_tokenizer`: append the first ``new_tokens`` merges of a BPE trained on
   Bashkir (:mod:`bashkir_peft.data.vocab` trains it) to the base tokenizer's BPE
   vocabulary and merge list. Not ``add_tokens``, which matches exact strings before
   pre-tokenization (it ignores the byte-level, space-prefixed forms and changes how any
   text containing the string splits). Every old token keeps its id; new ids follow the
   largest old id (added special tokens included). Intermediate merge pieces are tokens and
   count in ``new_tokens``. Only merges whose token holds a non-ASCII byte are taken, and
   they rank after every old merge, so an all-ASCII word (English) is cut exactly as
   before: BPE applies the lowest-ranked applicable merge first, the old merges reproduce
   the old cut, and no new merge can join two all-ASCII pieces. The new merges act on the
   pieces the old ones leave, so a new token whose merge path the base cuts differently is
   never produced (it still counts in K; on the demo corpus 12,032 of 16,000 occur in the
   tokenized training split, benchmarks/RESULTS.md). With ``protect`` texts, a new merge
   that would fire on them is dropped too, so they keep the base cut exactly (issue 32).
2. :func:`resize_and_init`: grow the input embeddings and the LM head (tied or untied) to
   the new vocabulary and initialize the new rows: ``mean`` of the base model's rows of the
   pieces the base tokenizer cuts the new token into (the baseline of Gee et al. 2022 and
   of FOCUS / WECHSEL comparisons, Dobler & de Melo 2023, sec. 4), ``mean_resizing``
   (transformers' default), ``focus`` (:mod:`bashkir_peft.models.focus`), or ``random``
   (normal, std = the model's ``initializer_range``) as the control.
3. :func:`token_rows_for_peft`: peft's ``trainable_token_indices`` for LoRA/QLoRA, so the
   new rows of the embedding and of an untied head train and are saved with the adapter
   (a tied head shares the embedding's rows; peft ties them); :func:`save_token_rows_only`
   keeps every save of that adapter (the Trainer's checkpoints included) to those rows.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bashkir_peft.config.tokenizer import InitMethod
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.focus import focus_init


def _byte_decoder() -> dict[str, int]:
    """The byte-level alphabet (GPT-2's ``bytes_to_unicode``) read backwards: char -> byte."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def _backend_bpe(tokenizer) -> dict:
    """The fast tokenizer's JSON, checked to be a byte-level BPE.

    Raises:
        ConfigError: not a fast tokenizer, not BPE, or not byte-level (SentencePiece-style
            tokenizers such as Mistral's are not supported).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError("vocabulary extension needs a fast (tokenizers) tokenizer")
    data = json.loads(backend.to_str())
    if data["model"]["type"] != "BPE" or "ByteLevel" not in json.dumps(data.get("pre_tokenizer")):
        raise ConfigError("vocabulary extension supports byte-level BPE tokenizers only (GPT-2, Qwen, "
                          f"DeepSeek, SmolLM2); this one is {data['model']['type']} with pre-tokenizer "
                          f"{(data.get('pre_tokenizer') or {}).get('type')}")
    return data


def _merges(model: dict) -> list[tuple[str, str]]:
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def base_words(base, texts: Sequence[str]) -> set[str]:
    """The distinct pre-tokenized words (byte-level strings) of ``texts`` under ``base``'s
    normalizer and pre-tokenizer: the units a BPE merges within."""
    backend = base.backend_tokenizer
    words: set[str] = set()
    for text in texts:
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        words.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text))
    return words


def protected_pairs(base, texts: Sequence[str]) -> set[tuple[str, str]]:
    """Every pair of adjacent tokens in the base tokenizer's cut of ``texts``: a new merge of
    such a pair would fire on that text (:func:`extend_tokenizer`'s ``protect``)."""
    model = base.backend_tokenizer.model
    pairs: set[tuple[str, str]] = set()
    for word in base_words(base, texts):
        pieces = [t.value for t in model.tokenize(word)]
        pairs.update(zip(pieces, pieces[1:]))
    return pairs


def extend_tokenizer(base, trained, new_tokens: int, protect: Sequence[str] = ()):
    """The base tokenizer with up to ``new_tokens`` tokens of ``trained`` appended (see module doc).

    Protection: with ``protect`` texts, a new merge is dropped (and with it every later merge
    built on its token) when its pair of tokens is adjacent anywhere in the base tokenizer's
    cut of those texts. New merges rank after every old one, so BPE first reproduces the base
    cut of a word and a new merge can fire on it only if its pair is adjacent in that cut:
    with those merges dropped, protected text tokenizes to exactly the base ids. (When the
    base BPE takes a whole word that is a vocabulary entry, ``ignore_merges``, a new token
    that equals a protected word is dropped as well.) What this costs in new-language
    fertility is :func:`bashkir_peft.data.vocab.adapt_tokenizer`'s ``train_after``; whether it
    generalizes beyond the protected sample is measured by
    :func:`bashkir_peft.models.retokenization.segmentation_change` on other text.

    Args:
        base: the base model's fast tokenizer (byte-level BPE).
        trained: a byte-level BPE tokenizer trained on the new language with the base's
            pre-tokenizer (``base.train_new_from_iterator``); its merges are taken in rank order.
        new_tokens: K, the number of new vocabulary entries to add (>= 0).
        protect: texts whose base segmentation must not change (e.g. Russian and English
            samples); empty: only all-ASCII merges are skipped.

    Returns:
        ``(tokenizer, added, dropped)``: a tokenizer of the base's class and special tokens, the
        new tokens (byte-level strings) in id order (``added[i]`` has id ``len(base) + i``), and
        the number of merges dropped for protection.

    Raises:
        ConfigError: a tokenizer that is not a byte-level BPE.
    """
    from transformers import AutoTokenizer

    data = _backend_bpe(base)
    model = data["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = _merges(model)
    known = set(merges)
    to_byte = _byte_decoder()
    next_id = max([len(base) - 1, *vocab.values(), *(t["id"] for t in data.get("added_tokens", []))]) + 1
    added: list[str] = []
    guarded = protected_pairs(base, protect) if protect else set()
    whole = base_words(base, protect) if protect and model.get("ignore_merges") else set()
    dropped = 0
    for a, b in _merges(_backend_bpe(trained)["model"]):
        if len(added) >= new_tokens:
            break
        token = a + b
        if (a, b) in known or a not in vocab or b not in vocab or all(to_byte[c] < 128 for c in token):
            continue
        if (a, b) in guarded or token in whole:
            dropped += 1
            continue
        merges.append((a, b))
        known.add((a, b))
        if token not in vocab:
            vocab[token] = next_id
            next_id += 1
            added.append(token)
    model["merges"] = [list(m) for m in merges]
    with tempfile.TemporaryDirectory() as tmp:
        base.save_pretrained(tmp)
        Path(tmp, "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    if tokenizer.pad_token is None and base.pad_token is not None:
        tokenizer.pad_token = base.pad_token
    return tokenizer, added, dropped


def base_pieces(base, token: str) -> list[int]:
    """The base ids the base BPE cuts the byte-level string ``token`` into (no pre-tokenization,
    so a leading space stays in its piece)."""
    return [t.id for t in base.backend_tokenizer.model.tokenize(token)]


def embedding_rows_agree(model, tokenizer) -> None:
    """Check that the input embeddings, the LM head and the tokenizer agree on the vocabulary size.

    Guards against ``resize_token_embeddings`` leaving the head unresized (transformers
    issues #45292, #45276).

    Raises:
        RuntimeError: the input rows, the head's rows (``out_features``) and ``len(tokenizer)``
            differ (only a vocabulary that grew must match exactly; a base model may carry
            padding rows beyond its tokenizer).
    """
    rows_in = model.get_input_embeddings().weight.shape[0]
    head = model.get_output_embeddings()
    rows_out = head.weight.shape[0] if head is not None else rows_in
    if rows_in != rows_out or rows_in < len(tokenizer):
        raise RuntimeError(f"vocabulary sizes disagree: input embeddings {rows_in} rows, LM head {rows_out}, "
                           f"tokenizer {len(tokenizer)}")


def is_tied(model) -> bool:
    """Whether the LM head shares its weight with the input embeddings."""
    head = model.get_output_embeddings()
    return head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def resize_and_init(model, base, tokenizer, added: list[str], init: InitMethod, seed: int = 0,
                    texts: Sequence[str] = ()) -> dict:
    """Grow ``model``'s input embeddings and LM head to ``tokenizer`` and initialize the new rows.

    Args:
        model: a causal LM whose vocabulary is ``base``'s (tied or untied head; a head bias,
            if any, is initialized like its weight).
        base: the base tokenizer (the pieces of each new token).
        tokenizer: the extended tokenizer (:func:`extend_tokenizer`).
        added: its new tokens, in id order (ids from ``len(base)`` on).
        init: ``mean``: each new row = mean of the base rows of its pieces (input embeddings
            and head separately when untied); ``random``: normal(0, ``initializer_range``),
            seeded by ``seed``; ``mean_resizing``: transformers' default for new rows (a draw
            from a normal with the old rows' mean and covariance, ``resize_token_embeddings(...,
            mean_resizing=True)``, seeded by ``seed``); ``focus``: FOCUS
            (:func:`bashkir_peft.models.focus.focus_init` on ``texts``; rows whose token never
            occurs there keep ``mean``).
        seed: seed of ``random`` and ``mean_resizing`` draws and of FOCUS's SVD.
        texts: target-language training text (``focus`` only).

    Returns:
        ``{"vocab_size", "new_rows", "tied", "init"}``, plus FOCUS's counts for ``focus``.

    Raises:
        RuntimeError: the resized model's embeddings, head and tokenizer disagree.
        ConfigError: ``focus`` without texts.
    """
    import torch

    if init == "focus" and not texts:
        raise ConfigError("init focus needs the training text for its auxiliary vectors")
    ids = [tokenizer.convert_tokens_to_ids(t) for t in added]
    rows = max(model.get_input_embeddings().weight.shape[0], len(tokenizer))
    if init == "mean_resizing":
        torch.manual_seed(seed)
    model.resize_token_embeddings(rows, mean_resizing=init == "mean_resizing")
    embedding_rows_agree(model, tokenizer)
    if init == "mean_resizing":
        return {"vocab_size": rows, "new_rows": len(ids), "tied": is_tied(model), "init": init}
    tied = is_tied(model)
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    std = getattr(model.config, "initializer_range", 0.02)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for token, i in zip(added, ids):
            if init in ("mean", "focus"):
                pieces = torch.tensor(base_pieces(base, token))
                emb[i] = emb[pieces].mean(0)
                if not tied:
                    head.weight[i] = head.weight[pieces].mean(0)
                if getattr(head, "bias", None) is not None:
                    head.bias[i] = head.bias[pieces].mean(0)
            else:
                emb[i] = torch.randn(emb.shape[1], generator=gen).to(emb.dtype) * std
                if not tied:
                    head.weight[i] = torch.randn(emb.shape[1], generator=gen).to(emb.dtype) * std
                if getattr(head, "bias", None) is not None:
                    head.bias[i] = 0
    focus = focus_init(model, tokenizer, ids, texts, seed=seed) if init == "focus" and ids else {}
    return {"vocab_size": rows, "new_rows": len(ids), "tied": tied, "init": init} | focus


def _module_name(model, module) -> str:
    return next(n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is module)


def token_rows_for_peft(model, ids: list[int]) -> dict[str, list[int]]:
    """peft's ``trainable_token_indices`` for the new rows: the input embedding's module name,
    plus the head's when untied (a tied head follows the embedding in peft)."""
    targets = {_module_name(model, model.get_input_embeddings()): list(ids)}
    if not is_tied(model):
        targets[_module_name(model, model.get_output_embeddings())] = list(ids)
    return targets


def save_token_rows_only(model) -> None:
    """Make every ``save_pretrained`` of the peft model ``model`` (the Trainer's checkpoints,
    which call it without arguments, and the final adapter) save its adapter weights and new
    token rows only, not the resized embedding matrix and head (vocabulary x hidden each).

    peft's ``save_embedding_layers="auto"`` (its default, ``get_peft_model_state_dict``) adds
    the whole embedding and head to the adapter whenever the vocabulary differs from the base
    model's config, even when ``trainable_token_indices`` trains only the new rows; the
    Trainer's ``_save`` passes no option, so the instance's ``save_pretrained`` gets
    ``save_embedding_layers=False`` bound here (a caller may still pass ``True``). Nothing is
    lost: peft's ``trainable_tokens_delta`` holds the rows' full values (``index_copy`` over
    the base rows), the old rows are the base model's, frozen, and the base model is resized
    before the adapter loads (training's resume re-adapts it the same way; ``load_trained``
    resizes it). SmolLM2-135M with 16,000 new tokens: a checkpoint's adapter file held 384 MB
    (two 65,152 x 576 matrices beside the rows), the final adapter's 47 MB; a checkpoint now
    holds the final adapter's tensors (benchmarks/RESULTS.md, issue 32).

    Args:
        model: a ``peft.PeftModel`` (LoRA/QLoRA with ``trainable_token_indices``).
    """

    model.save_pretrained = functools.partial(model.save_pretrained, save_embedding_layers=False)


def merge_token_rows(model) -> int:
    """Write a peft model's trained token rows into the matrices they replace, for inference.

    Unmerged, peft's ``TrainableTokensLayer`` builds the whole merged matrix on every forward
    call (``get_merged_weights``: an ``index_copy`` of vocabulary x hidden floats), so every
    generated token pays one such copy per wrapped module (SmolLM2-135M with 16,000 new tokens:
    65,152 x 576 floats each: its adapted runs generated 1.5-3.4 words/s against the base
    tokenizer's 3.8, benchmarks/RESULTS.md, issue 32). peft's own ``merge`` does the same
    ``index_copy`` once: the rows are copied, not added, so the weights and every output are
    bit-identical to the unmerged model's (tested). LoRA layers are left as they are.

    Args:
        model: a ``peft.PeftModel``, or any module (nothing to merge: returns 0).

    Returns:
        The number of token-row layers merged: 2 for SmolLM2 and GPT-2 style models, the
        embedding's and the head's (a tied head gets a layer of its own that shares the
        embedding's rows).
    """
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    layers = [m for m in model.modules() if isinstance(m, TrainableTokensLayer) and not m.merged]
    for layer in layers:
        layer.merge()
    return len(layers)


def token_rows_cost(model, new_rows: int) -> dict:
    """What training the new rows costs: ``{"peft_mechanism", "token_rows_trainable_params"}``.

    For a peft model, the parameters of its TrainableTokens layers (``trainable_tokens_delta``:
    one row of ``hidden`` values per new token and wrapped module); for full fine-tuning, the new
    rows of the input embeddings plus those of an untied head (trained with everything else).
    """
    deltas = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]
    if deltas:
        return {"peft_mechanism": "trainable_token_indices", "token_rows_trainable_params": sum(p.numel() for p in deltas)}
    hidden = model.get_input_embeddings().weight.shape[1]
    return {"peft_mechanism": None, "token_rows_trainable_params": new_rows * hidden * (1 if is_tied(model) else 2)}
