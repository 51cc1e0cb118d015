"""Load YAML files into validated pydantic models with one-line, actionable errors."""

from __future__ import annotations

import ast
import difflib
from functools import cache
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


@cache
def _strict_loader() -> type:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key]})",
                        key_node.start_mark)
                seen[key] = line
            return super().construct_mapping(node, deep)

    return StrictLoader


def parse_yaml(text: str) -> object:
    """Parse YAML text safely (``safe_load``), refusing duplicate keys.

    Raises:
        yaml.YAMLError: malformed YAML or a key given twice in one mapping.
    """
    return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> object:
    """Parse a YAML file (:func:`parse_yaml`: safe, no duplicate keys).

    Raises:
        ConfigError: missing file, malformed YAML or a duplicate key (with line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}") from None


INJECTED_HEADER = "# Parameters"
"""First line of the cell papermill injects (``papermill -p NAME VALUE``, the grid runner)."""


def injected_names(namespace: dict) -> list[str]:
    """Names assigned by the parameters cell papermill injected, read from IPython's input
    history ``In`` in ``namespace`` (the last cell whose first line is :data:`INJECTED_HEADER`);
    ``[]`` outside IPython or when nothing was injected."""
    cells = [c for c in namespace.get("In", []) if isinstance(c, str) and c.lstrip().startswith(INJECTED_HEADER)
             and c.lstrip().splitlines()[0].strip() == INJECTED_HEADER]
    if not cells:
        return []
    try:
        tree = ast.parse(cells[-1])
    except SyntaxError:
        return []
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]


def notebook_params(model: type[M], namespace: dict) -> M:
    """The parameters of a stage notebook: its ``globals()`` after the ``parameters`` cell and
    the cell papermill injected, validated into the stage's params model. Every notebook opens
    with this one call.

    Raises:
        ConfigError: an injected name that is not a field of ``model`` (a typo such as
            ``-p lerning_rate 1e-4``: named, with the nearest declared name), or one line
            naming every parameter whose value is invalid.
    """
    where = f"{model.__name__} (notebook parameters)"
    for name in injected_names(namespace):
        if name not in model.model_fields:
            near = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}?" if near else f"declared: {', '.join(model.model_fields)}"
            raise ConfigError(f"{where}: unknown parameter {name!r} injected; {hint}")
    return validate(model, {k: namespace[k] for k in model.model_fields if k in namespace}, where)


PASSES = "passes"
"""The parameter through which the grid runner gives a stage notebook all of a cell's passes
of that stage (e.g. the evaluation's corpus split and each external set) in one execution."""


def notebook_passes(model: type[M], namespace: dict) -> list[M]:
    """The parameters of every pass of a stage notebook: with :data:`PASSES` injected (a list
    of parameter mappings, one per pass, as the grid runner would inject each into a notebook
    of its own), each mapping validated over the notebook's own defaults (its ``parameters``
    cell), so pass k gets exactly what a separate execution with that mapping would get;
    without it, the one pass of :func:`notebook_params`.

    Raises:
        ConfigError: parameters injected beside :data:`PASSES`, a pass that is not a mapping,
            a name in a pass that is not a field of ``model``, or an invalid value (naming the
            pass).
    """
    passes = namespace.get(PASSES)
    if passes is None:
        return [notebook_params(model, namespace)]
    where = f"{model.__name__} (notebook parameters)"
    beside = [n for n in injected_names(namespace) if n != PASSES]
    if beside:
        raise ConfigError(f"{where}: {', '.join(beside)} injected beside {PASSES}; give them inside each pass")
    if not isinstance(passes, list) or not passes or not all(isinstance(x, dict) for x in passes):
        raise ConfigError(f"{where}: {PASSES} must be a non-empty list of parameter mappings")
    defaults = {k: namespace[k] for k in model.model_fields if k in namespace}
    out = []
    for i, values in enumerate(passes, 1):
        unknown = sorted(set(values) - set(model.model_fields))
        if unknown:
            raise ConfigError(f"{where}: pass {i}: unknown parameter(s) {', '.join(unknown)}")
        out.append(validate(model, defaults | values, f"{where}, pass {i}"))
    return out


def load_yaml(path: str | Path, model: type[M]) -> M:
    """Read and validate a YAML file against ``model``."""
    return validate(model, read_yaml(path), str(path))
