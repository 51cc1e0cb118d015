"""Tokenizer adaptation settings (the grid's ``tokenizers`` entries; a training parameter):
K new Bashkir tokens, the BPE they come from, the initialization of their rows, the text
whose segmentation they must not change (:mod:`bashkir_peft.data.vocab` applies them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bashkir_peft.yamlio import StrictModel

InitMethod = Literal["mean", "random", "mean_resizing", "focus"]

HELD_OUT_TEST_SETS = ("flores", "sib200")
"""Path parts a protected or replayed text may not contain: FLORES-200 devtest (and SIB-200, whose sentences
are FLORES sentences) is where re-tokenization and forgetting are measured."""


class TextSample(StrictModel):
    """A text file of another language: text whose base segmentation the adapted tokenizer keeps
    (``protect`` entries), or text mixed into training (``replay`` entries).

    Attributes:
        path: a ``.jsonl`` file (records with ``text``; ``.jsonl.gz`` too) or a text file (one
            document a line); relative paths are taken from the repository root.
        lang: for a ``.jsonl``, keep only records whose ``lang`` field is this code (e.g.
            ``rus`` of ``../shared/corpus/langid-sample.jsonl``); ``None`` = every record.
    """

    path: str
    lang: str | None = None

    @field_validator("path")
    @classmethod
    def _not_a_test_set(cls, path: str) -> str:
        if any(part in path.lower() for part in HELD_OUT_TEST_SETS):
            raise ValueError(f"{path}: a protected or replayed text may not come from FLORES-200 or SIB-200 (the sets that "
                             "measure re-tokenization and forgetting); use a sample such as "
                             "../shared/corpus/langid-sample.jsonl")
        return path


class TokenizerAdaptation(StrictModel):
    """One tokenizer-adaptation setting (the grid's ``tokenizers`` entries; a ``train`` parameter).

    Attributes:
        new_tokens: K, the number of new tokens (intermediate merge pieces included); 0
            keeps the base vocabulary.
        bpe_vocab_size: size of the byte-level BPE trained on the training split; ``None`` =
            ``2 * new_tokens + 1000`` (many of its tokens already exist in the base).
        init: initialization of the new embedding and LM-head rows: ``mean`` of the base
            pieces, ``mean_resizing`` (transformers' default), ``focus`` (Dobler & de Melo 2023,
            on the training split), or ``random`` (the control).
        protect: texts whose base segmentation must stay exactly as it was: new merges that
            would fire on them are dropped (:func:`bashkir_peft.models.vocab.extend_tokenizer`);
            empty = only all-ASCII merges are skipped.
        new_rows_warmup_steps: optimizer steps, before the main phase, that train only the new
            embedding and head rows (:func:`bashkir_peft.train.new_rows.warm_up_new_rows`); 0 = none.
        new_rows_learning_rate: the new rows' learning rate in the warm-up and, for LoRA/QLoRA,
            in the main phase (their own optimizer group); ``None`` = the run's learning rate.
            Full fine-tuning trains the rows inside the whole embedding matrix: the main phase
            keeps the run's rate there (an error when set with no warm-up).
        replay: texts of other languages (e.g. Russian and English samples) mixed into the
            training split, ``replay_share`` of its UTF-8 bytes.
        replay_share: the share of the training text's bytes that is replay (0 = none; needs
            ``replay``).
    """

    new_tokens: int = Field(ge=0)
    bpe_vocab_size: int | None = Field(None, gt=256)
    init: InitMethod = "mean"
    protect: list[TextSample] = Field([], json_schema_extra={
        "source": "ours: no protected text (the adaptation of issue 15)"})
    new_rows_warmup_steps: int = Field(0, ge=0, json_schema_extra={
        "source": "ours: no warm-up (the adaptation of issue 15); Dobler & de Melo 2023 warm up embeddings only"})
    new_rows_learning_rate: float | None = Field(None, gt=0, json_schema_extra={
        "source": "ours: the run's learning rate"})
    replay: list[TextSample] = Field([], json_schema_extra={"source": "ours: no replay"})
    replay_share: float = Field(0.0, ge=0, lt=1, json_schema_extra={"source": "ours: no replay"})

    @model_validator(mode="after")
    def _replay_has_text(self) -> TokenizerAdaptation:
        if self.replay_share > 0 and not self.replay:
            raise ValueError("replay_share > 0 needs replay texts (replay: [{path: ..., lang: ...}])")
        if self.replay and self.replay_share == 0:
            raise ValueError("replay texts given but replay_share is 0; set the share of replayed bytes")
        return self

    @property
    def resolved_bpe_vocab_size(self) -> int:
        return self.bpe_vocab_size if self.bpe_vocab_size is not None else 2 * self.new_tokens + 1000

    def for_run_id(self) -> dict:
        """The setting as a run id hashes it: every field, except the ones added after issue 15
        (``protect``, the new-row warm-up and learning rate, replay) while they hold their defaults, so the run ids of earlier adapted
        cells stay what they were."""
        later = {"protect", "new_rows_warmup_steps", "new_rows_learning_rate", "replay", "replay_share"}
        return self.model_dump(exclude={n for n in later if getattr(self, n) == type(self).model_fields[n].default})
