"""The lessons: short notebooks (``lessons/``) that teach one idea each on Bashkir.

Each lesson takes its data from a parameter and a SHA-256 checksum per file
(:func:`checked_files`): a local folder (default ``../shared/eval/sib200``) or an
``https://`` base address, so a lesson also runs where ``../shared`` is absent (a hosted
notebook service). :func:`execute_lessons` runs them with papermill (``make lessons``,
``bashkir-peft lessons``) into ``<runs root>/lessons/``, where ``bashkir-peft book`` finds
their executed copies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
import urllib.request
import warnings
from pathlib import Path

from bashkir_peft.atomic import write_text_atomic
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.executor import execute
from bashkir_peft.names import sha256_file
from bashkir_peft.settings import REPO_ROOT, cache_dir, resolve_path, runs_root

LESSONS_DIR = REPO_ROOT / "lessons"
TIMINGS = "timings.json"


def _is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def checked_files(source: str, files: dict[str, str]) -> Path:
    """A folder holding ``files`` with the given checksums.

    Args:
        source: a local folder (relative paths are taken from the repository root) or an
            ``https://`` base address; ``files`` are relative to it.
        files: relative path -> expected hex SHA-256.

    Returns:
        ``source`` itself when local, else a cache folder
        (``<cache>/lessons/<sha256 of source>``) holding the downloaded files.

    Raises:
        DataError: a file is missing, cannot be downloaded, or has another checksum (the
            message names the file and both checksums).
    """
    if not files:
        raise ConfigError("checked_files needs at least one file and its checksum")
    if _is_url(source):
        folder = cache_dir() / "lessons" / hashlib.sha256(source.encode()).hexdigest()[:16]
        for rel, expected in files.items():
            target = folder / rel
            if target.is_file() and sha256_file(target) == expected:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            url = source.rstrip("/") + "/" + rel
            try:
                with urllib.request.urlopen(url, timeout=60) as response, target.with_suffix(".part").open("wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as err:
                raise DataError(f"{url}: cannot download ({err})") from None
            target.with_suffix(".part").replace(target)
    else:
        folder = resolve_path(source)
    for rel, expected in files.items():
        path = folder / rel
        if not path.is_file():
            raise DataError(f"{path}: not found (set the lesson's data parameter to a folder or https:// base holding {rel})")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(f"{path}: SHA-256 {actual}, expected {expected} (not the lesson's data)")
    return folder


def lesson_notebooks(lessons_dir: Path = LESSONS_DIR) -> list[Path]:
    """The lesson notebooks in order (``NN_*.ipynb``)."""
    return sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb"))


def lessons_out_dir() -> Path:
    """Where executed lessons go and where the book looks for them: ``<runs root>/lessons``."""
    return runs_root() / "lessons"


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished child processes (the kernels)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def execute_lessons(out_dir: Path | None = None, parameters: dict | None = None, only: list[str] | None = None,
                    timeout_s: int = 900) -> dict[str, float]:
    """Execute the lessons with papermill.

    Args:
        out_dir: output folder (default :func:`lessons_out_dir`); executed copies keep
            their file names, and ``timings.json`` records each lesson's wall seconds and
            the CPU seconds of its kernel (user + system).
        parameters: papermill parameters: ``{lesson stem: {...}}`` for one lesson; any
            other key is given to every lesson run.
        only: lesson stems or numbers (``"01"``) to run (default all).
        timeout_s: per-cell limit.

    Returns:
        ``{lesson stem: {"wall_s", "cpu_s"}}``.

    Raises:
        ConfigError: ``only`` names no lesson.
        PapermillExecutionError: a lesson cell failed (its executed copy shows where).
    """
    out = Path(out_dir) if out_dir else lessons_out_dir()
    parameters = parameters or {}
    notebooks = lesson_notebooks()
    if only:
        notebooks = [nb for nb in notebooks if nb.stem in only or nb.stem[:2] in only]
        if not notebooks:
            raise ConfigError(f"no lesson matches {only}; lessons: {', '.join(nb.stem for nb in lesson_notebooks())}")
    stems = {nb.stem for nb in lesson_notebooks()}
    common = {k: v for k, v in parameters.items() if k not in stems}
    timings = json.loads((out / TIMINGS).read_text(encoding="utf-8")) if (out / TIMINGS).is_file() else {}
    for nb in notebooks:
        start, cpu = time.perf_counter(), _children_cpu_s()
        execute(nb, out / nb.name, {**common, **parameters.get(nb.stem, {})}, REPO_ROOT, timeout_s)
        timings[nb.stem] = {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(_children_cpu_s() - cpu, 1)}
        write_text_atomic(out / TIMINGS, json.dumps(timings, indent=2) + "\n")
    return timings


def quiet_libraries() -> None:
    """Keep a lesson's page free of progress bars and library chatter: transformers' and
    huggingface_hub's progress bars off, transformers' and bitsandbytes' logs at ERROR,
    Python warnings from those libraries ignored. Call it in a lesson's first cell."""
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for name in ("bitsandbytes", "peft", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("transformers", "peft", "bitsandbytes", "torch"):
        warnings.filterwarnings("ignore", module=module)
