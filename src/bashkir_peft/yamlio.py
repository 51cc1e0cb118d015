"""Load YAML files into validated pydantic models with one-line, actionable errors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bashkir_peft.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every parameter model: unknown keys are errors; a str field never takes
    a number (a run name "42" stays a string), an int field never takes a fraction."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_source(model: type[BaseModel], name: str) -> str:
    """Where the default of ``model.name`` comes from: the ``source`` its field carries
    (``Field(default, json_schema_extra={"source": "..."})``), or a line saying there is none."""
    extra = model.model_fields[name].json_schema_extra
    source = extra.get("source") if isinstance(extra, dict) else None
    return f"default: {source}" if source else "default (no source recorded)"


def format_validation_error(err: ValidationError, where: str) -> str:
    """Render a pydantic error as one line: ``where: key.path: message; ...``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{where}: " + "; ".join(parts)


def validate(model: type[M], data: object, where: str) -> M:
    """Validate ``data`` against ``model``.

    Raises:
        ConfigError: one line naming every offending key.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None


def read_yaml(path: str | Path) -> object:
    """Parse a YAML file.

    Raises:
        ConfigError: missing file or malformed YAML (with line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}") from None


def notebook_params(model: type[M], namespace: dict) -> M:
    """The parameters of a stage notebook: its ``globals()`` after the ``parameters`` cell and
    the cell papermill injected, validated into the stage's params model. Every notebook opens
    with this one call; names not in ``model`` are ignored.

    Raises:
        ConfigError: one line naming every offending parameter.
    """
    return validate(model, {k: namespace[k] for k in model.model_fields if k in namespace},
                    f"{model.__name__} (notebook parameters)")


def load_yaml(path: str | Path, model: type[M]) -> M:
    """Read and validate a YAML file against ``model``."""
    return validate(model, read_yaml(path), str(path))
