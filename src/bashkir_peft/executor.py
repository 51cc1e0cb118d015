"""The one papermill executor of the project: the Jupyter kernel it runs notebooks on, the
parameters a notebook declares, and the execution of a notebook with injected parameters
(grid stages, the book's report, the lessons).
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from traitlets.config import Config

from bashkir_peft.errors import ConfigError
from bashkir_peft.settings import REPO_ROOT

KERNEL = "bashkir-peft"
KERNEL_INSTALL = ('python -m ipykernel install --sys-prefix --name bashkir-peft '
                  '--display-name "Python (bashkir-peft)"')


def default_notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


@lru_cache(maxsize=32)
def _inspect(path: str, mtime: float) -> dict[str, dict]:
    import papermill

    return papermill.inspect_notebook(path)


def notebook_parameters(path: str | Path) -> dict[str, dict]:
    """The parameters a notebook declares (name -> papermill's description with ``default``).

    Raises:
        ConfigError: the notebook is missing or has no cell tagged ``parameters``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"notebook {path} not found")
    params = _inspect(str(path), path.stat().st_mtime)
    if not params:
        raise ConfigError(f"{path}: no cell tagged 'parameters' (papermill needs one to inject parameters)")
    return params


def check_kernel() -> None:
    """Raise :class:`ConfigError` if the ``bashkir-peft`` Jupyter kernel is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        raise ConfigError(f"Jupyter kernel {KERNEL!r} is not registered: {KERNEL_INSTALL}")


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path, timeout_s: int | None = None) -> None:
    """Execute ``notebook`` with papermill into ``output`` (kernel :data:`KERNEL`): the one
    papermill executor of the project (grid stages and the book's report).

    ``cwd`` is the repository root, where the notebooks' relative defaults (e.g.
    ``../shared/corpus/...``) point, as when a reader runs them by hand; the runner itself
    passes absolute paths. ``timeout_s``: per-cell limit (``None``: none).

    Raises:
        PapermillExecutionError: a notebook cell raised (the executed notebook, with the
            error, is still written to ``output``).
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    # The kernel talks to papermill over local sockets (IPC), not unencrypted TCP: no warning
    # on every kernel start, nothing listening on a port. Each kernel gets its own socket
    # folder: jupyter_client's default names (kernel-ipc-1..5 in the working folder) are
    # shared by kernels started at the same time (one cell per GPU), whose messages then
    # cross ("Invalid Signature"), and they would litter the repository root.
    with tempfile.TemporaryDirectory(prefix="bpk-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "k")}})
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL,
                                   cwd=str(cwd), progress_bar=False, log_output=False, start_timeout=300,
                                   execution_timeout=timeout_s, config=ipc)
