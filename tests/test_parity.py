"""Tokenizer parity on parallel text (Petrov et al. 2023): the premium is the Bashkir side's
tokens over the English side's, on every SIB-200 sentence; sides that are not parallel fail."""

from __future__ import annotations

import shutil

import pytest

from bashkir_peft.data.fertility import parallel_sides, parity_table
from bashkir_peft.errors import DataError


def test_premium_is_bashkir_tokens_over_english_tokens(shared_dir):
    from transformers import AutoTokenizer

    from bashkir_peft.models.registry import get_entry

    root = shared_dir / "eval" / "sib200"
    bak, eng = parallel_sides(root)
    assert len(bak) == len(eng) == 701 + 99 + 204
    table = parity_table(root, ["gpt2", "distilgpt2", "tiny-qwen2"]).set_index("model")
    tok = AutoTokenizer.from_pretrained(get_entry("gpt2").tokenizer_path())
    n_bak = sum(len(t) for t in tok(bak, add_special_tokens=False)["input_ids"])
    n_eng = sum(len(t) for t in tok(eng, add_special_tokens=False)["input_ids"])
    assert table.loc["gpt2", "tokens_bak"] == n_bak and table.loc["gpt2", "tokens_eng"] == n_eng
    assert table.loc["gpt2", "premium"] == pytest.approx(n_bak / n_eng)
    assert table.loc["distilgpt2", "premium"] == table.loc["gpt2", "premium"]  # one tokenizer
    # GPT-2's English byte-level BPE pays more for Cyrillic than Qwen2.5's multilingual vocabulary
    assert table.loc["gpt2", "premium"] > table.loc["tiny-qwen2", "premium"] > 1


def test_sides_that_are_not_parallel_fail(tmp_path, shared_dir):
    root = shared_dir / "eval" / "sib200"
    for lang in ("bak_Cyrl", "eng_Latn"):
        shutil.copytree(root / lang, tmp_path / lang)
    test = tmp_path / "eng_Latn" / "test.tsv"
    lines = test.read_text(encoding="utf-8").splitlines(keepends=True)
    test.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]), encoding="utf-8")
    with pytest.raises(DataError, match="bak_Cyrl and eng_Latn test sentences are not parallel"):
        parallel_sides(tmp_path)
