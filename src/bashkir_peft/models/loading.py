"""One loading function for every model the project uses.

``load_model(model, method)`` takes a registry name (``params/models.yaml``), a local
folder, or a Hub id, and returns a :class:`LoadedModel` (model, tokenizer, resolved
source) ready for ``method``:

- ``full`` / ``lora``: full-precision weights in the compute dtype.
- ``qlora``: 4-bit NF4 weights with double quantization (bitsandbytes), compute dtype
  bf16 on GPU; on CPU float32 (bitsandbytes' CPU kernels dequantize to it). Source:
  Dettmers et al., "QLoRA" (2023), sec. 3; transformers ``BitsAndBytesConfig`` docs.

Rules: no silent fallback between local and Hub sources; never
``trust_remote_code`` unless the registry entry says so; safetensors only unless the
entry sets ``allow_pickle``. Errors a user can fix raise :class:`ModelNotFoundError`
or :class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bashkir_peft.errors import ConfigError, ModelNotFoundError
from bashkir_peft.models.device import Placement, choose_device
from bashkir_peft.models.precision import bf16_supported
from bashkir_peft.models.provision import provision
from bashkir_peft.models.registry import ModelEntry, load_registry
from bashkir_peft.names import METHODS

# Hub ids are "owner/name"; bare names are registry names (the Hub's legacy bare ids
# gpt2, distilgpt2, gpt2-medium are registry entries).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""The compute dtypes a model may be loaded (or cast) in."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from and what records must say about it.

    Attributes:
        name: registry name, or the path / Hub id as given.
        location: what ``from_pretrained`` receives (a folder or a Hub id).
        source: ``hub``, ``local``, ``tiny`` or ``gguf``.
        revision: Hub commit, ``"unpinned"``, or ``"local:<sha256[:12]>"`` of the folder's
            config and weight file names/sizes.
        entry: the registry entry, when there is one.
    """

    name: str
    location: str
    source: str
    revision: str
    entry: ModelEntry | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def trust_remote_code(self) -> bool:
        return bool(self.entry and self.entry.trust_remote_code)

    @property
    def allow_pickle(self) -> bool:
        return bool(self.entry and self.entry.allow_pickle)

    def record(self) -> dict:
        """The fields a result record stores about the model."""
        return {
            "name": self.name,
            "location": self.location,
            "source": self.source,
            "revision": self.revision,
            "model_type": self.entry.model_type if self.entry else None,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_model` returns.

    Attributes:
        model: the transformers causal LM (``AutoModelForCausalLM``).
        tokenizer: its tokenizer, ``pad_token`` set.
        resolved: where the model came from (:class:`ResolvedModel`).
    """

    model: Any
    tokenizer: Any
    resolved: ResolvedModel


def _folder_revision(path: Path) -> str:
    h = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "local:" + h.hexdigest()[:12]


def _local_folder(path: Path, name: str, source: str, entry: ModelEntry | None) -> ResolvedModel:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} is not a model folder (no config.json)")
    notes = [entry.notes] if entry and entry.notes else []
    return ResolvedModel(name, str(path), source, _folder_revision(path), entry, notes)


def hub_commit(hub_id: str, revision: str | None = None) -> str | None:
    """The Hub commit ``hub_id`` resolves to (at ``revision``, default the main branch), so that
    records and run ids name the exact weights: the commit the local Hugging Face cache holds
    (no network), else the Hub's answer (``HfApi.model_info(...).sha``; metadata only, no
    download) unless ``HF_HUB_OFFLINE`` is set; ``None`` when neither is available.
    """
    from huggingface_hub import HfApi, constants, try_to_load_from_cache

    cached = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return HfApi().model_info(hub_id, revision=revision, timeout=10).sha
    except Exception:  # noqa: BLE001 - unreachable Hub or unknown repo: loading will say which
        return None


def resolve_model(model: str | os.PathLike) -> ResolvedModel:
    """Resolve a registry name, local folder, or Hub id (in that order; no fallback).

    A registry name is looked up; a string that looks like a path (absolute, ``./``,
    ``~``, or an existing folder) is a local folder; anything else must be a Hub id
    ``owner/name``. A Hub model's revision is the registry's pinned commit, else the commit
    it resolves to now (:func:`hub_commit`), else ``"unpinned"``; loading then asks for
    exactly that commit, so records and run ids name the weights used.

    Raises:
        ModelNotFoundError: a path-like string that is not a folder, or a string that is
            neither a registry name nor a valid Hub id (the message lists registry names).
    """
    text = str(model)
    reg = load_registry()
    if text in reg.models:
        entry = reg.get(text)
        if entry.source == "hub":
            notes = [entry.notes] if entry.notes else []
            revision = entry.revision or hub_commit(entry.hub_id) or entry.revision_label
            return ResolvedModel(text, entry.hub_id, "hub", revision, entry, notes)
        return _local_folder(provision(entry), text, entry.source, entry)
    path = Path(text).expanduser()
    if text.startswith(("/", ".", "~")) or path.is_dir():
        if not path.is_dir():
            raise ModelNotFoundError(f"model folder {text} does not exist")
        return _local_folder(path.resolve(), text, "local", None)
    if _HUB_ID.match(text):
        return ResolvedModel(text, text, "hub", hub_commit(text) or "unpinned")
    known = ", ".join(sorted(reg.models))
    raise ModelNotFoundError(f"{text!r} is not a registry name, a local folder or a Hub id; registry names: {known}")


def default_dtype(resolved: ResolvedModel, method: str, placement: Placement | None = None) -> str:
    """Compute dtype: float32 off CUDA (bf16 training on CPU is slow and loses precision for
    little memory gain at the model sizes a CPU can train); on CUDA bf16 for qlora, else the
    registry's; float16 where the registry's or QLoRA's bf16 is not supported by the GPU.

    Args:
        placement: where the model will run; default the device rule
            (:func:`bashkir_peft.models.device.choose_device`).
    """
    placement = placement or choose_device(None, method)
    if placement.device != "cuda":
        return "float32"
    dtype = "bfloat16" if method == "qlora" or not resolved.entry else resolved.entry.dtype
    if dtype == "bfloat16" and not bf16_supported(placement):
        return "float16"
    return dtype


def quantization_config(compute_dtype: str):
    """The QLoRA quantization: NF4, double quantization, the given compute dtype."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def _hub_error(resolved: ResolvedModel, err: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot load {resolved.location!r} from the Hugging Face Hub ({type(err).__name__}); "
        f"offline? download it on a connected machine (hf download {resolved.location} --local-dir DIR) "
        "and pass DIR as the model"
    )


def load_tokenizer(resolved: ResolvedModel):
    """Load the tokenizer that belongs to the weights; set ``pad_token`` to EOS if unset."""
    from transformers import AutoTokenizer

    kwargs = {"trust_remote_code": resolved.trust_remote_code}
    location = resolved.location
    adapter = resolved.entry.adapter if resolved.entry else None
    if adapter is not None:  # the adapter's extended vocabulary has its own tokenizer
        location = adapter.hub_id
        if adapter.revision:
            kwargs["revision"] = adapter.revision
    elif resolved.source == "hub" and resolved.revision != "unpinned":
        kwargs["revision"] = resolved.revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except OSError as err:
        if resolved.source == "hub":
            raise _hub_error(resolved, err) from None
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _with_adapter(net, adapter):
    """The base ``net`` with the Hub adapter merged in, after resizing its vocabulary to the
    adapter's (MaLA-500's model card: ``resize_token_embeddings(260164)``, then
    ``PeftModel.from_pretrained``)."""
    from peft import PeftModel

    net.resize_token_embeddings(adapter.vocab_size)
    kwargs = {"revision": adapter.revision} if adapter.revision else {}
    return PeftModel.from_pretrained(net, adapter.hub_id, **kwargs).merge_and_unload()


def load_model(model: str | os.PathLike, method: str = "full", *, dtype: str | None = None,
               placement: Placement | None = None) -> LoadedModel:
    """Load a model and its tokenizer for a fine-tuning ``method``.

    Args:
        model: registry name, local folder, or Hub id (see :func:`resolve_model`).
        method: ``"full"``, ``"lora"`` or ``"qlora"``. For ``qlora`` the linear layers are
            4-bit NF4 (double quantization); LoRA adapters are attached by
            :func:`bashkir_peft.models.lora.apply_lora`, not here.
        dtype: compute dtype name (``float32``, ``bfloat16``, ``float16``); default
            :func:`default_dtype`.
        placement: the device to put the model on; default the device rule
            (:func:`bashkir_peft.models.device.choose_device`): the accelerator when there
            is one. QLoRA's 4-bit weights are placed at load time (``device_map``) on this
            process's GPU (``LOCAL_RANK`` under torchrun), never all processes on GPU 0.

    Returns:
        a :class:`LoadedModel`: the model, its tokenizer and the :class:`ResolvedModel`.

    Raises:
        ConfigError: unknown method or dtype; a baseline entry loaded for ``lora``/``qlora``.
        ModelNotFoundError: unknown name, missing folder, or Hub unreachable.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    entry = load_registry().models.get(str(model))
    if entry is not None and entry.baseline and method != "full":  # before any Hub request
        raise ConfigError(f"model {str(model)!r} is a zero-shot baseline (registry: baseline true); "
                          f"it is scored as it is, not trained with {method}")
    resolved = resolve_model(model)
    placement = placement or choose_device(None, method)
    dtype = dtype or default_dtype(resolved, method, placement)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    kwargs = {
        "dtype": getattr(torch, dtype),
        "trust_remote_code": resolved.trust_remote_code,
        "use_safetensors": None if resolved.allow_pickle else True,
    }
    if resolved.source == "hub" and resolved.revision != "unpinned":
        kwargs["revision"] = resolved.revision
    if method == "qlora":
        kwargs["quantization_config"] = quantization_config(dtype)
        kwargs["device_map"] = {"": placement.index if placement.device == "cuda" else "cpu"}
    tokenizer = load_tokenizer(resolved)
    try:
        net = AutoModelForCausalLM.from_pretrained(resolved.location, **kwargs)
    except OSError as err:
        if resolved.source == "hub":
            raise _hub_error(resolved, err) from None
        raise ModelNotFoundError(f"cannot load model weights from {resolved.location}: {err}".splitlines()[0]) from None
    if resolved.entry is not None and resolved.entry.adapter is not None:
        net = _with_adapter(net, resolved.entry.adapter)
    if net.generation_config.pad_token_id is None:
        net.generation_config.pad_token_id = tokenizer.pad_token_id
    if method != "qlora" and placement.device != "cpu":
        net = net.to(placement.torch_device)
    if resolved.source == "hub" and resolved.revision == "unpinned":  # the commit transformers loaded
        resolved = replace(resolved, revision=getattr(net.config, "_commit_hash", None) or "unpinned")
    return LoadedModel(net, tokenizer, resolved)


def prefix_token_id(tokenizer) -> int:
    """BOS, or EOS where the tokenizer has no BOS (lm_eval ``HFLM.prefix_token_id``).

    Raises:
        ConfigError: the tokenizer has neither.
    """
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise ConfigError("the tokenizer has neither a BOS nor an EOS token to prefix documents with")
    return tid
