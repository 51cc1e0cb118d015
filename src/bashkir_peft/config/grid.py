"""Experiment grids (``params/grids/*.yaml``): the file format and its expansion into cells.

A grid file has a ``name``; per-stage settings ``data``, ``train``, ``evaluate``,
``generate``, ``downstream`` (parameters of the notebooks 01-04 and 06, injected by papermill); the ``matrix``
axes ``model`` x ``method`` x ``lora_r`` x ``seed``; ``exclude`` selectors, ``include``
extra cells (each with its own stage settings) and ``overrides`` (stage settings for
the cells a selector matches). The corpus is never in the file: it is a required
command-line setting (``--corpus``), so nothing falls back silently from one source to
another.

Where the values come from: every value a grid sets carries its source, written
``{value: 2.0e-4, source: "paper, Table 2", note: "..."}`` (axes: ``{values: [...],
source: ...}``); ``source`` is free text that says where the value comes from (the paper
and where in it, another paper, a library default, or ``ours: <why>``); ``note`` is
optional. An ``exclude``/``include``/``overrides`` entry may carry one ``source`` for all
its values. Plain values are allowed only under the grid-level rule ``default_source:
"<text>"``, which gives them all that source (the demo and smoke grids: every value is
ours). A grid that sets ``strict_sources: true`` (``paper.yaml``) refuses a
``default_source``: nobody mistakes our choice for the paper's. A value the grid does not
set is the stage's default, whose source is on its params-model field
(``json_schema_extra={"source": ...}``); ``grid run --dry-run`` prints every value of every
cell with its source (:mod:`bashkir_peft.grid.values`).

Tokenizer adaptation: ``tokenizers`` names adaptation settings
(:class:`~bashkir_peft.config.tokenizer.TokenizerAdaptation`: K new tokens, BPE size, init) and
the axis ``tokenizer`` (default ``[base]``) picks them; a cell with an adaptation gets it as
its training parameter ``tokenizer``. A ``base`` tokenizer adds nothing to a cell's axes or
parameters, so grids without the axis keep their run ids.

``study`` (optional) names, before anything runs, the comparisons a study is for and its
budget (:class:`~bashkir_peft.config.design.StudyDesign`); the report states them first, with their intervals.

``stages`` (default: all) names the stages every cell runs, e.g. ``[train]`` for a
learning-rate sweep judged on validation loss (``cpu-study-lr.yaml``).

``tiers`` (optional) names subsets of the grid's cells (:class:`Tier`: a ``note`` saying what
the subset is for, and ``select``, selectors whose matches it unites): ``grid run GRID --tier
quick`` runs only those cells, with the same run ids as in the whole grid, so a tier's runs are the grid's runs
(a teacher's quick tier, later completed by the rest of the grid, reruns nothing).

``hardware`` (default ``any``): ``gpu`` says the grid is sized for GPUs (``paper.yaml``,
``paper-lr.yaml``). On a machine where torch sees no CUDA device, its dry run still plans every
cell (memory, trainable parameters, the GPU time estimate) but skips the wall-time probe of this
CPU, which at 7B shapes takes minutes and times a training nobody would run here (except for
cells pinned to ``device: cpu``; :func:`bashkir_peft.grid.estimate.cells_on_this_cpu`). A real
run is unchanged.

Expansion rules (one cell = model x method x lora_r x seed [x tokenizer]):
    - ``lora_r`` applies to ``lora`` and ``qlora`` only; ``full`` and ``base`` cells have
      ``lora_r = None``.
    - ``base`` (the zero-shot baseline: no training; evaluation and generation of the
      base model) does not depend on a seed: one base cell per model, with the first
      seed of the matrix (used by generation's sampling, if any).
    - ``tokenizer`` applies to trained cells only: ``base`` cells keep the base tokenizer.
    - settings are layered: the grid's stage settings < each matching ``overrides`` entry
      (in file order) < an ``include`` entry's own settings.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints, field_validator

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.external import with_default_selection
from bashkir_peft.config.lora import lora_variant_label
from bashkir_peft.config.report import ReportParams
from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.errors import ConfigError
from bashkir_peft.names import (
    ADAPTER_METHODS,
    BASE_TOKENIZER,
    NAME_PATTERN,
    Method,
    check_name,
    method_label,
    run_label,
)
from bashkir_peft.records import GridFiles
from bashkir_peft.settings import REPO_ROOT, resolve_path, runs_root
from bashkir_peft.stages import CELL_STAGES, STAGE_SECTIONS
from bashkir_peft.yamlio import StrictModel, field_source, read_yaml, validate

AXES: tuple[str, ...] = ("model", "method", "lora_r", "seed", "label", "tokenizer")
Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Annotation(StrictModel):
    """Where a value comes from."""

    source: Source
    note: str | None = None


StageSettings = dict[str, JsonValue]


Rank = Annotated[int, Field(gt=0, strict=True)]
"""A LoRA rank of the grid: a positive integer (strict: YAML's ``true`` is not rank 1)."""
Seed = Annotated[int, Field(ge=0, strict=True)]
"""A seed of the grid: an integer >= 0 (strict: YAML's ``true`` is not seed 1)."""


class Matrix(StrictModel):
    """The axes of the grid."""

    model: list[str] = Field(min_length=1)
    method: list[Method] = Field(min_length=1)
    lora_r: list[Rank] = Field(default=[8], min_length=1, json_schema_extra={
        "source": "the grid format's default: r=8, the rank the paper names (DeepSeek-7B LoRA r=8)"})
    seed: list[Seed] = Field(default=[42], min_length=1, json_schema_extra={
        "source": "the grid format's default: 42, the first seed of the paper's released runs"})
    tokenizer: list[str] = Field(default=[BASE_TOKENIZER], min_length=1, json_schema_extra={
        "source": "ours: the base model's tokenizer (issue 15 adds adapted ones by name)"})


def _one_or_many(v):
    return v if v is None or isinstance(v, list) else [v]


class Selector(StrictModel):
    """Matches cells: each given axis must take one of the listed values (AND over axes)."""

    model: list[str] | None = None
    method: list[Method] | None = None
    lora_r: list[Rank | None] | None = None
    seed: list[Seed] | None = None
    label: list[str | None] | None = None
    """Labels to match; ``null`` in the list matches the cells without a label."""
    tokenizer: list[str] | None = None
    source: Source | None = None
    note: str | None = None

    @field_validator("model", "method", "lora_r", "seed", "label", "tokenizer", mode="before")
    @classmethod
    def as_list(cls, v):
        return _one_or_many(v)

    def matches(self, cell: Cell) -> bool:
        return all(getattr(self, k) is None or getattr(cell, k) in getattr(self, k) for k in AXES)


class Tier(StrictModel):
    """A named subset of a grid's cells (``grid run GRID --tier NAME``): the cells any of its
    selectors matches, with what the subset is for (a teacher's quick tier, one part of a
    study run in parts)."""

    note: str
    select: list[Selector] = Field(min_length=1)

    def matches(self, cell: Cell) -> bool:
        return any(sel.matches(cell) for sel in self.select)


class _StageSettings(StrictModel):
    """Per-stage settings shared by overrides and included cells, with their source."""

    train: StageSettings = {}
    evaluate: StageSettings = {}
    generate: StageSettings = {}
    downstream: StageSettings = {}
    source: Source | None = None
    note: str | None = None


class Override(_StageSettings):
    """Stage settings for the cells ``when`` matches."""

    when: Selector


class Include(_StageSettings):
    """An extra cell outside the matrix (e.g. one deliberately failing cell)."""

    model: str
    method: Method
    lora_r: Rank | None = None
    seed: Seed | None = None
    label: str | None = Field(default=None, pattern=NAME_PATTERN)
    tokenizer: str = BASE_TOKENIZER


class GridSpec(StrictModel):
    """A validated grid file (see the module docstring)."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    default_source: Source | None = None
    strict_sources: bool = False
    corpus_hint: str | None = None
    data: StageSettings = {}
    train: StageSettings = {}
    evaluate: StageSettings = {}
    generate: StageSettings = {}
    downstream: StageSettings = {}
    tokenizers: dict[str, TokenizerAdaptation] = {}
    stages: list[Literal["train", "evaluate", "generate", "downstream"]] | None = Field(None, min_length=1)
    hardware: Literal["any", "gpu"] = "any"
    study: StudyDesign | None = None
    matrix: Matrix
    exclude: list[Selector] = []
    include: list[Include] = []
    overrides: list[Override] = []
    tiers: dict[str, Tier] = {}


_ENTRY = re.compile(r"^(?:exclude|include|overrides)\[\d+\]")


@dataclass(frozen=True)
class Grid:
    """A loaded grid: the spec, where each value comes from, and the file it came from.

    Attributes:
        spec: the validated file.
        sources: annotation path (``train.block_size``, ``matrix.seed``, ``overrides[1]``,
            ``include[0].train.max_steps``) -> ``{"source": ..., "note": ...}``.
        path: the file.
    """

    spec: GridSpec
    sources: dict[str, dict]
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def source(self, path: str) -> str:
        """Where the grid's value at ``path`` comes from: its own annotation, else its
        entry's (``overrides[1]``), else the grid's ``default_source`` (with its note)."""
        entry = _ENTRY.match(path)
        ann = self.sources.get(path) or (self.sources.get(entry.group(0)) if entry else None)
        axis = path.removeprefix("matrix.")
        if ann is None and axis in Matrix.model_fields and axis not in self.spec.matrix.model_fields_set:
            return field_source(Matrix, axis)
        if ann is None:
            return f"{self.spec.default_source} (default_source)"
        return ann["source"] + (f" ({ann['note']})" if ann.get("note") else "")


@dataclass(frozen=True)
class Cell:
    """One experiment: axes plus the resolved stage settings of the grid (no paths yet).

    Attributes:
        model, method, lora_r, seed, label: the axes (``lora_r`` None for full/base).
        params: stage name (train, evaluate, generate, downstream) -> settings from the grid.
        origins: stage name -> setting -> the grid path that set it (``train.block_size``,
            ``overrides[1].train.max_steps``, ``include[0].train.x``), for :meth:`Grid.source`;
            ``origins["axes"]``: axis -> ``matrix.<axis>`` or ``include[i]``. Not part of a
            run's identity.
    """

    model: str
    method: str
    lora_r: int | None
    seed: int
    label: str | None = None
    tokenizer: str = BASE_TOKENIZER
    only: tuple[str, ...] | None = field(default=None, compare=False, hash=False)
    params: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)
    origins: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def axes(self) -> dict[str, Any]:
        """The axes a run id hashes; ``tokenizer`` only when not ``base`` (old ids stay)."""
        return {k: getattr(self, k) for k in AXES if k != "tokenizer" or self.tokenizer != BASE_TOKENIZER}

    @property
    def trains(self) -> bool:
        """False for the zero-shot baseline ("base"), which has no training stage."""
        return self.method != "base"

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages the cell runs: all of its method's, or those of them the grid's
        ``stages`` keeps (``only``)."""
        own = CELL_STAGES if self.trains else CELL_STAGES[1:]
        return own if self.only is None else tuple(s for s in own if s in self.only)

    @property
    def slug(self) -> str:
        """A readable, filesystem-safe name: ``model-method[-rR]-sSEED[-label][-tokenizer]``.

        A model given as a path names its folders without ``.`` and ``..`` (``../models/m``:
        ``models_m``), so a run folder is never hidden nor outside the grid's folder."""
        parts = [p for p in re.split(r"[/\\]+", self.model) if p not in ("", ".", "..")]
        model = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts)).strip("._-") or "model"
        slug = run_label(model, self.method, self.lora_r, self.seed, self.label, sep="-")
        return slug if self.tokenizer == BASE_TOKENIZER else f"{slug}-{self.tokenizer}"


# --- loading --------------------------------------------------------------------------


def _is_annotated(v: object, key: str) -> bool:
    return isinstance(v, dict) and key in v and "source" in v and set(v) <= {key, "source", "note"}


def _unwrap(value: object, key: str, where: str, path: str, sources: dict) -> object:
    if _is_annotated(value, key):
        ann = validate(Annotation, {k: v for k, v in value.items() if k != key}, f"{where}: {path}")
        sources[path] = ann.model_dump()
        return value[key]
    return value


def _unwrap_section(section: object, where: str, prefix: str, sources: dict) -> object:
    if not isinstance(section, dict):
        return section
    return {k: _unwrap(v, "value", where, f"{prefix}.{k}", sources) for k, v in section.items()}


def _entry_annotation(entry: object, prefix: str, sources: dict) -> None:
    if isinstance(entry, dict) and "source" in entry:
        sources[prefix] = {"source": entry["source"], "note": entry.get("note")}


def parse_grid(raw: object, where: str = "grid") -> Grid:
    """Validate a parsed grid file (a dict) and unwrap its annotated values.

    Raises:
        ConfigError: one line per problem: unknown key, wrong type, out-of-range value,
            ``corpus`` set in the file, a value without a source in a grid without
            ``default_source``, an empty grid.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a grid file is a mapping (name, matrix, train, ...)")
    raw = dict(raw)
    sources: dict[str, dict] = {}
    for section in STAGE_SECTIONS:
        if section in raw:
            raw[section] = _unwrap_section(raw[section], where, section, sources)
    if isinstance(raw.get("matrix"), dict):
        raw["matrix"] = {k: _unwrap(v, "values", where, f"matrix.{k}", sources) for k, v in raw["matrix"].items()}
    for kind in ("exclude", "include", "overrides"):
        entries = raw.get(kind)
        if not isinstance(entries, list):
            continue
        out = []
        for i, entry in enumerate(entries):
            _entry_annotation(entry, f"{kind}[{i}]", sources)
            if isinstance(entry, dict):
                entry = dict(entry)
                for section in CELL_STAGES:
                    if section in entry:
                        entry[section] = _unwrap_section(entry[section], where, f"{kind}[{i}].{section}", sources)
            out.append(entry)
        raw[kind] = out
    spec = validate(GridSpec, raw, where)
    if "corpus" in spec.data:
        raise ConfigError(f"{where}: data.corpus: the corpus is set on the command line (--corpus / make CORPUS=...), "
                          "not in the grid file")
    _check_sources(spec, sources, where)
    _check_tokenizers(spec, where)
    grid = Grid(spec, sources)
    cells = expand(grid)
    if not cells:
        raise ConfigError(f"{where}: the grid has no cells (every cell is excluded)")
    _check_study(spec, cells, where)
    for name, tier in spec.tiers.items():
        name = check_name(name, f"{where}: tiers:")
        if not any(tier.matches(c) for c in cells):
            raise ConfigError(f"{where}: tiers: {name}: selects no cell of the grid")
    return grid


def _cell_labels(cell: Cell, label_arms: list[str] = ()) -> set[str]:
    """The method labels the report may give a cell's runs (:func:`method_label`): its axes with
    its LoRA variant (``train.lora_options``), where it sets ``train.target_modules`` also
    with its placement (``attention`` or the module list; which one the report writes is for the
    model registry to say, a floor above this one, so both are accepted here), and its arm
    where its label is one of ``label_arms``."""
    train = cell.params.get("train", {}) if cell.method in ADAPTER_METHODS else {}
    variant = lora_variant_label(train.get("lora_options"))
    modules = train.get("target_modules")
    placements = ["", *(["attention", "+".join(modules)] if modules else [])]
    arm = cell.label if cell.label in label_arms else None
    return {method_label(cell.method, cell.lora_r, cell.tokenizer, variant, p, arm) for p in placements}


def _check_study(spec: GridSpec, cells: list[Cell], where: str) -> None:
    """Every method a study's comparison names is a method label of the grid's cells
    (:func:`_cell_labels`: placement, LoRA variant and arm included), and every arm the study
    names is a label of its cells."""
    if spec.study is None:
        return
    labels = set().union(*(_cell_labels(c, spec.study.label_arms) for c in cells))
    unused = sorted(set(spec.study.label_arms) - {c.label for c in cells})
    if unused:
        raise ConfigError(f"{where}: study: label_arms {', '.join(unused)}: no cell has this label")
    for c in [spec.study.primary, *spec.study.secondary]:
        for side in (c.a, c.b):
            if side not in labels:
                raise ConfigError(f"{where}: study: {side!r} is not a method of this grid's cells "
                                  f"({', '.join(sorted(labels))})")


def _check_sources(spec: GridSpec, sources: dict, where: str) -> None:
    if spec.strict_sources and spec.default_source is not None:
        raise ConfigError(f"{where}: default_source: refused, this grid sets strict_sources (every value carries "
                          "its own source)")
    if spec.default_source is not None:
        return
    missing = [(f"{s}.{k}", v) for s in STAGE_SECTIONS for k, v in getattr(spec, s).items()
               if f"{s}.{k}" not in sources]
    missing += [(f"matrix.{k}", getattr(spec.matrix, k)) for k in Matrix.model_fields
                if k in spec.matrix.model_fields_set and f"matrix.{k}" not in sources]
    for kind in ("exclude", "include", "overrides"):
        for i, entry in enumerate(getattr(spec, kind)):
            if entry.source is not None:  # the entry's source covers its values
                continue
            if kind in ("exclude", "include"):  # the entry itself chooses cells
                missing.append((f"{kind}[{i}]", None))
            for s in CELL_STAGES if kind != "exclude" else ():
                missing += [(f"{kind}[{i}].{s}.{k}", v) for k, v in getattr(entry, s).items()
                            if f"{kind}[{i}].{s}.{k}" not in sources]
    if missing:
        (path, value), more = missing[0], len(missing) - 1
        shown = "" if value is None else f" = {value!r}"
        raise ConfigError(f"{where}: {path}{shown} has no source: write {{value: ..., source: \"...\"}} "
                          f"(this grid has no default_source)" + (f"; {more} more without one" if more else ""))


def _check_tokenizers(spec: GridSpec, where: str) -> None:
    """Every ``tokenizer`` axis value is ``base`` or a name in ``tokenizers``; a ``base`` cell
    (untrained) has the base tokenizer; a grid without ``default_source`` has no ``tokenizers``
    (their values would need a source: not supported there yet)."""
    if spec.tokenizers and spec.default_source is None:
        raise ConfigError(f"{where}: tokenizers: set default_source (the adaptation settings are ours)")
    if BASE_TOKENIZER in spec.tokenizers:
        raise ConfigError(f"{where}: tokenizers.{BASE_TOKENIZER}: the name 'base' means the base model's tokenizer")
    bad = [t for t in [*spec.matrix.tokenizer, *(i.tokenizer for i in spec.include)]
           if t != BASE_TOKENIZER and t not in spec.tokenizers]
    if any(i.method == "base" and i.tokenizer != BASE_TOKENIZER for i in spec.include):
        raise ConfigError(f"{where}: include: a 'base' cell is not trained, so it keeps the base tokenizer")
    if bad:
        raise ConfigError(f"{where}: tokenizer {', '.join(map(repr, bad))} not defined under tokenizers "
                          f"(defined: {', '.join(spec.tokenizers) or 'none'})")


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file (see :func:`parse_grid`).

    Raises:
        ConfigError: missing file, malformed YAML, or an invalid grid.
    """
    path = Path(path)
    grid = parse_grid(read_yaml(path), str(path))
    return Grid(grid.spec, grid.sources, path.resolve())


# --- expansion ------------------------------------------------------------------------


def _layer(cell_axes: dict, spec: GridSpec, own: dict[str, dict] | None = None,
           own_path: str = "") -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
    """A cell's stage settings and, per setting, the grid path that set it."""
    probe = Cell(**cell_axes, only=_only(spec))
    params = {s: dict(getattr(spec, s)) for s in CELL_STAGES}
    origins = {s: {k: f"{s}.{k}" for k in params[s]} for s in CELL_STAGES}
    if probe.tokenizer != BASE_TOKENIZER:
        params["train"]["tokenizer"] = spec.tokenizers[probe.tokenizer].for_run_id()
        origins["train"]["tokenizer"] = f"tokenizers.{probe.tokenizer}"

    def apply(settings: dict, prefix: str) -> None:
        for s in CELL_STAGES:
            params[s].update(settings.get(s, {}))
            origins[s].update({k: f"{prefix}.{s}.{k}" for k in settings.get(s, {})})

    for i, ov in enumerate(spec.overrides):
        if ov.when.matches(probe):
            apply({s: getattr(ov, s) for s in CELL_STAGES}, f"overrides[{i}]")
    apply(own or {}, own_path)
    sets = params["evaluate"].get("external_sets")
    if isinstance(sets, list):  # the subset a capped set scores, spelled out (the run id hashes it)
        params["evaluate"]["external_sets"] = [with_default_selection(e) for e in sets]
    return {s: params[s] for s in probe.stages}, {s: origins[s] for s in probe.stages}


def _only(spec: GridSpec) -> tuple[str, ...] | None:
    return None if spec.stages is None else tuple(spec.stages)


def expand(grid: Grid) -> list[Cell]:
    """All cells of the grid, in a stable order (matrix order, then includes).

    Returns:
        Cells with their resolved stage settings; duplicates (same axes) removed.

    Raises:
        ConfigError: a cell that runs no stage (a ``base`` cell in a grid whose ``stages``
            is ``[train]``).
    """
    cells = _expand(grid)
    idle = [c.slug for c in cells if not c.stages]
    if idle:
        raise ConfigError(f"{grid.path or grid.name}: cells that run no stage under stages "
                          f"{grid.spec.stages}: {', '.join(idle)}")
    return cells


def _expand(grid: Grid) -> list[Cell]:
    spec = grid.spec
    m = spec.matrix
    seen: dict[tuple, Cell] = {}
    for model in m.model:
        for method in m.method:
            ranks = m.lora_r if method in ADAPTER_METHODS else [None]
            seeds = m.seed if method != "base" else m.seed[:1]
            tokenizers = m.tokenizer if method != "base" else [BASE_TOKENIZER]
            for r, seed, tok in itertools.product(ranks, seeds, tokenizers):
                axes = {"model": model, "method": method, "lora_r": r, "seed": seed, "label": None, "tokenizer": tok}
                probe = Cell(**axes)
                if any(sel.matches(probe) for sel in spec.exclude):
                    continue
                params, origins = _layer(axes, spec)
                origins["axes"] = {k: f"matrix.{k}" for k in AXES if k != "label"}
                seen.setdefault(tuple(axes.values()), Cell(**axes, only=_only(spec), params=params, origins=origins))
    for i, inc in enumerate(spec.include):
        r = inc.lora_r if inc.method in ADAPTER_METHODS else None
        if inc.method in ADAPTER_METHODS and r is None:
            r = m.lora_r[0]
        axes = {"model": inc.model, "method": inc.method, "lora_r": r,
                "seed": m.seed[0] if inc.seed is None else inc.seed, "label": inc.label, "tokenizer": inc.tokenizer}
        own = {s: getattr(inc, s) for s in CELL_STAGES}
        params, origins = _layer(axes, spec, own, f"include[{i}]")
        origins["axes"] = {k: f"include[{i}]" if k in inc.model_fields_set else f"matrix.{k}" for k in AXES}
        seen[tuple(axes.values())] = Cell(**axes, only=_only(spec), params=params, origins=origins)
    return list(seen.values())


def parse_only(filters: list[str] | None) -> dict[str, set[str]]:
    """Parse ``--only key=value[,value...]`` filters (repeated keys are OR-ed).

    Raises:
        ConfigError: not ``key=value``, or an unknown key.
    """
    out: dict[str, set[str]] = {}
    for f in filters or []:
        key, sep, value = f.partition("=")
        key = key.strip()
        if not sep or not value:
            raise ConfigError(f"--only {f!r}: expected key=value, e.g. --only method=lora")
        if key not in AXES + ("run_id",):
            raise ConfigError(f"--only {f!r}: unknown key {key!r}; keys: {', '.join(AXES + ('run_id',))}")
        out.setdefault(key, set()).update(v.strip() for v in value.split(","))
    return out


def _text(v: object) -> str:
    return "none" if v is None else str(v)


def select(cells: list[Cell], only: dict[str, set[str]], run_ids: dict[Cell, str] | None = None) -> list[Cell]:
    """Keep the cells matching every ``only`` key (values compared as text: ``seed=42``
    matches the int 42; ``lora_r=none`` matches full and base cells)."""
    def ok(c: Cell) -> bool:
        for key, values in only.items():
            v = run_ids.get(c) if key == "run_id" and run_ids else getattr(c, key, None)
            if _text(v).lower() not in {x.lower() for x in values}:
                return False
        return True

    return [c for c in cells if ok(c)]


# --- where a grid's runs are ----------------------------------------------------------


def grid_file(grid: str) -> Grid | None:
    """The grid file ``grid`` names, loaded and validated by the grid loader
    (:func:`~bashkir_peft.config.grid.load_grid`); ``None`` for a bare grid name.

    Args:
        grid: a grid YAML path (relative paths: from the working folder, else the repository
            root) or a grid name.

    Raises:
        ConfigError: a path ending in .yaml/.yml that does not exist, or an invalid grid file.
    """
    p = Path(grid)
    if p.suffix not in (".yaml", ".yml"):
        return None
    return load_grid(p if p.is_absolute() or p.exists() else REPO_ROOT / p)


def resolve_grid(grid: str) -> tuple[str, Path]:
    """The grid's name and runs folder (``<runs root>/<name>``).

    Args:
        grid: a grid YAML path (its ``name``) or a bare grid name.

    Raises:
        ConfigError: an invalid grid file (:func:`grid_file`), or a grid name that breaks
            :data:`~bashkir_peft.names.NAME_PATTERN` (e.g. ``../x``).
    """
    loaded = grid_file(grid)
    name = loaded.name if loaded is not None else check_name(grid)
    return name, runs_root() / name


def study_design(grid: str) -> StudyDesign | None:
    """The ``study`` block of a grid file (``None`` for a grid name, or a grid without one).

    Raises:
        ConfigError: an invalid grid file (:func:`grid_file`).
    """
    loaded = grid_file(grid)
    return None if loaded is None else loaded.spec.study


def report_dirs(params: ReportParams) -> tuple[str, Path, Path]:
    """The grid's name, its runs folder and the report's output folder.

    Args:
        params: the report's parameters: ``runs_dir`` when given, else :func:`resolve_grid`'s;
            ``output_dir`` when given, else ``<runs folder>/report``.

    Raises:
        ConfigError: an invalid grid file or grid name (:func:`resolve_grid`).
    """
    name, runs = resolve_grid(params.grid)
    runs = resolve_path(params.runs_dir) if params.runs_dir else runs
    return name, runs, resolve_path(params.output_dir) if params.output_dir else runs / GridFiles.REPORT

