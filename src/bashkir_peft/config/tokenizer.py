"""Tokenizer adaptation settings (the grid's ``tokenizers`` entries; a training parameter):
K new Bashkir tokens, the BPE they come from, the initialization of their rows
(:mod:`bashkir_peft.data.vocab` applies them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bashkir_peft.yamlio import StrictModel

InitMethod = Literal["mean", "random"]


class TokenizerAdaptation(StrictModel):
    """One tokenizer-adaptation setting (the grid's ``tokenizers`` entries; a ``train`` parameter).

    Attributes:
        new_tokens: K, the number of new tokens (intermediate merge pieces included); 0
            keeps the base vocabulary.
        bpe_vocab_size: size of the byte-level BPE trained on the training split; ``None`` =
            ``2 * new_tokens + 1000`` (many of its tokens already exist in the base).
        init: initialization of the new embedding and LM-head rows: ``mean`` of the base
            pieces, or ``random`` (the control).
    """

    new_tokens: int = Field(ge=0)
    bpe_vocab_size: int | None = Field(None, gt=256)
    init: InitMethod = "mean"

    @property
    def resolved_bpe_vocab_size(self) -> int:
        return self.bpe_vocab_size if self.bpe_vocab_size is not None else 2 * self.new_tokens + 1000
