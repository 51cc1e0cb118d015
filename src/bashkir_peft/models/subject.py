"""The subject under test of every measuring stage (evaluation, generation, downstream).

A subject is a base model (registry name, local folder or Hub id: the zero-shot baseline,
method ``base``) or a finished training run (``train.json`` + ``final/``: method ``full``,
``lora`` or ``qlora``, with the tokenizer saved in the run, adapted or not), loaded one way
(:func:`load_subject`) and described one way (:class:`Subject`: method, the ``model`` field
records store, the training record, merge note, device, prefix token, run label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import Placement, choose_device
from bashkir_peft.models.loading import DTYPES, load_model, prefix_token_id
from bashkir_peft.models.trained import load_trained, read_finished_run
from bashkir_peft.names import ADAPTER_METHODS, run_label
from bashkir_peft.records import ModelInfo, TrainRecord

UNMERGED_NOTE = "adapters scored unmerged"
"""The merge note of a LoRA/QLoRA run used as trained (adapter beside the base weights)."""


@dataclass(frozen=True)
class Subject:
    """A loaded base model or finished run, and what the stages' records say about it.

    Attributes:
        model: the ``transformers`` causal LM (a ``PeftModel`` for an unmerged adapter), in
            eval mode, on ``placement``'s device.
        tokenizer: its tokenizer (a run's own, from ``final/``).
        method: ``base``, ``full``, ``lora`` or ``qlora`` (:data:`bashkir_peft.names.METHODS`).
        base_model: the base model as named (registry name, folder or Hub id): the model given,
            or the one the run was trained from.
        model_info: the ``model`` field of the stages' records: where the base model came from
            and its revision (:meth:`bashkir_peft.models.loading.ResolvedModel.record`; for a run,
            as its training recorded it).
        record: the run's training record (``None`` for a base model).
        run_dir: the run folder (``None`` for a base model).
        merged: whether an adapter was merged into the base weights.
        merge_note: how it was merged, :data:`UNMERGED_NOTE` for an unmerged adapter, ``None``
            for a base model or a full fine-tuning run.
        placement: the device (:func:`bashkir_peft.models.device.choose_device`).
    """

    model: Any
    tokenizer: Any
    method: str
    base_model: str
    model_info: ModelInfo
    record: TrainRecord | None
    run_dir: Path | None
    merged: bool
    merge_note: str | None
    placement: Placement

    @property
    def lora_r(self) -> int | None:
        """The adapter rank of a LoRA/QLoRA run; ``None`` otherwise."""
        return self.record.params.lora_r if self.method in ADAPTER_METHODS else None

    @property
    def seed(self) -> int | None:
        """The training seed of a run; ``None`` for a base model."""
        return self.record.params.seed if self.record is not None else None

    @property
    def prefix_token(self) -> str:
        """The token documents and prompts are prefixed with (BOS, else EOS:
        :func:`bashkir_peft.models.loading.prefix_token_id`), as a string.

        Raises:
            ConfigError: the tokenizer has neither BOS nor EOS.
        """
        return self.tokenizer.convert_ids_to_tokens(prefix_token_id(self.tokenizer))

    def label(self, seed: int | None = None) -> str:
        """The run label (:func:`bashkir_peft.names.run_label`), e.g. ``smollm2-135m/qlora/r8/s42``.

        Args:
            seed: the seed a base model's label carries (e.g. the decoding seed, so that base
                cells of several seeds differ); a run's label carries its training seed.
        """
        return run_label(self.model_info.name, self.method, self.lora_r,
                         self.seed if self.record is not None else seed)


def load_subject(model: str | None = None, run_dir: str | Path | None = None, *, merge: bool = False,
                 dtype: str | None = None, device: str | None = None) -> Subject:
    """Load the subject under test: a finished run when ``run_dir`` is given, else the base model.

    Args:
        model: base model (registry name, local folder or Hub id). With ``run_dir`` it may only
            name the run's base model (checked before any weights load).
        run_dir: a finished training run folder (``train.json`` + ``final/``).
        merge: merge a lora/qlora run's adapter into its base weights (QLoRA: the NF4 base
            dequantized to float32 first, :func:`bashkir_peft.models.trained.load_trained`);
            no effect on a base model or a full fine-tuning run, which have no adapter.
        dtype: compute dtype name (``float32``, ``bfloat16``, ``float16``); ``None``: a run's
            training dtype, a base model's loader default
            (:func:`bashkir_peft.models.loading.default_dtype`). A run is cast after loading.
        device: ``cpu``, ``cuda`` or ``mps`` to pin the device; ``None``: the device rule.

    Returns:
        :class:`Subject`, its model in eval mode.

    Raises:
        ConfigError: neither ``model`` nor ``run_dir``; no finished run in ``run_dir`` or
            ``model`` not its base (:func:`bashkir_peft.models.trained.read_finished_run`);
            an unknown ``dtype``, or ``dtype`` on an unmerged QLoRA run (its weights are 4-bit);
            a device that is not there. All before any weights load.
        ModelNotFoundError: an unknown or unreachable base model.
    """
    import torch

    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    if run_dir is None:
        if model is None:
            raise ConfigError("give model (a base model) or run_dir (a finished training run)")
        placement = choose_device(device)
        loaded = load_model(model, "full", dtype=dtype, placement=placement)
        return Subject(loaded.model.eval(), loaded.tokenizer, "base", str(model),
                       ModelInfo.model_validate(loaded.resolved.record()), None, None, False, None, placement)

    run_dir = Path(run_dir)
    record = read_finished_run(run_dir, model)
    method = record.params.method
    merge = merge and method in ADAPTER_METHODS
    if dtype is not None and method == "qlora" and not merge:
        raise ConfigError("dtype cannot change a 4-bit QLoRA model; leave dtype unset (or merge=True)")
    placement = choose_device(device, method)
    trained = load_trained(run_dir, merge=merge, placement=placement)
    net = trained.model if dtype is None else trained.model.to(getattr(torch, dtype))
    note = trained.merge_note or (UNMERGED_NOTE if method in ADAPTER_METHODS else None)
    return Subject(net.eval(), trained.tokenizer, method, record.params.model, record.model, record, run_dir,
                   merge, note, placement)
