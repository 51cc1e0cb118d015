"""What produced a result: environment, code version, hardware, time and memory.

Every result record (training, evaluation, generation) embeds :func:`environment_info`
and the measurements of a :class:`ResourceMeter`, and is written with
:func:`bashkir_peft.atomic.write_json_atomic` so an interrupted write never leaves a
truncated record.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

from bashkir_peft.settings import REPO_ROOT

PACKAGES = (
    "bashkir-peft", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets",
    "tokenizers", "safetensors", "numpy", "pandas", "papermill", "datasketch", "gguf",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` where not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit(repo: Path = REPO_ROOT) -> dict[str, object]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": sha, "dirty": None if status is None else bool(status)}


def hardware_info() -> dict[str, object]:
    """CPU model, cores available, memory, and the CUDA device (if any)."""
    import psutil
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_cores_available": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def environment_info() -> dict[str, object]:
    """Packages, git commit and hardware, for a result record."""
    return {"packages": package_versions(), "git": git_commit(), "hardware": hardware_info()}


class ResourceMeter:
    """Measure wall time and peak memory of a block.

    Peak memory is the process's resident set size sampled every ``interval`` seconds
    (CPU; includes everything the process holds) and, on CUDA, ``torch.cuda.max_memory_allocated``
    reset on entry.

    Example::

        with ResourceMeter() as meter:
            train()
        meter.result()  # {"wall_time_s": ..., "peak_rss_mib": ..., "peak_gpu_mib": ...}
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_rss = 0
        self.wall_time_s: float | None = None
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> ResourceMeter:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_time_s = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, float | None]:
        """The measurements: of the whole block after it, so far while inside it."""
        import torch

        gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        wall = self.wall_time_s if self.wall_time_s is not None else time.perf_counter() - self._start
        return {"wall_time_s": wall, "peak_rss_mib": self.peak_rss / 2**20, "peak_gpu_mib": gpu}
