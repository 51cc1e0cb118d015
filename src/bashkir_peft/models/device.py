"""The one device rule of every stage (training, evaluation, generation).

A model goes to the accelerator when there is one, unless the user pins a device:

- ``device=None`` (automatic): CUDA when ``torch.cuda.is_available()``; else Apple MPS
  when available and the method supports it (QLoRA does not: bitsandbytes has no MPS
  kernels, so QLoRA falls back to the CPU and says so); else the CPU. **MPS is untested**
  (no test of this project runs on it); records say so.
- ``device="cpu" | "cuda" | "mps"``: that device, or a :class:`ConfigError` when it is not
  there. Which GPU is "cuda" is the standard ``CUDA_VISIBLE_DEVICES`` (one process sees
  its first visible GPU; under ``torchrun`` each process takes its ``LOCAL_RANK``).

Several visible GPUs and one process: the run uses one GPU and says so
(:func:`one_gpu_per_process`); ``torch.nn.DataParallel`` is never used (it replicates the
model each step and multiplies the batch by the GPU count without a word). For several
GPUs, a training cell asks for ``processes`` (DDP, :mod:`bashkir_peft.train.distributed`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bashkir_peft.errors import ConfigError

DEVICES = ("cpu", "cuda", "mps")
"""Devices a user may pin (``device`` of the training, evaluation and generation parameters)."""

MPS_NOTE = "Apple MPS: untested (no test of this project runs on it)"


@dataclass(frozen=True)
class Placement:
    """Where a stage runs, as its record states it.

    Attributes:
        device: ``cpu``, ``cuda`` or ``mps`` (the device type).
        index: the CUDA device index this process uses (``None`` off CUDA).
        how: ``pinned`` (the user's ``device``) or ``auto`` (the rule above).
        name: the accelerator's name (``torch.cuda.get_device_name``) or ``cpu`` / ``mps``.
        visible_gpus: ``torch.cuda.device_count()`` in this process.
        notes: what the rule decided that a reader must know (fallbacks, unused GPUs).
    """

    device: str
    index: int | None
    how: str
    name: str
    visible_gpus: int
    notes: tuple[str, ...] = ()

    @property
    def torch_device(self) -> str:
        """The ``torch.device`` string: ``cpu``, ``mps`` or ``cuda:<index>``."""
        return f"cuda:{self.index}" if self.device == "cuda" else self.device

    def record(self, **extra) -> dict:
        """The ``device`` field of a record (``extra``: e.g. the process count)."""
        return {"device": self.torch_device, "how": self.how, "name": self.name,
                "visible_gpus": self.visible_gpus, "notes": list(self.notes), **extra}


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, set by torchrun; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """The number of training processes (``WORLD_SIZE``, set by torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this is the process that writes records and weights (``RANK`` 0, or no torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def choose_device(pinned: str | None = None, method: str | None = None) -> Placement:
    """Apply the device rule (module docstring).

    Args:
        pinned: ``None`` (automatic) or one of :data:`DEVICES`.
        method: ``full``, ``lora``, ``qlora`` or ``None`` (inference of a merged/base model);
            only ``qlora`` narrows the choice (no MPS).

    Returns:
        :class:`Placement`; on CUDA the index is this process's ``LOCAL_RANK``.

    Raises:
        ConfigError: an unknown device, a pinned device that is not there, QLoRA pinned to
            MPS, or a ``LOCAL_RANK`` beyond the visible GPUs.
    """
    import torch

    if pinned is not None and pinned not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or None (automatic), got {pinned!r}")
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    notes: list[str] = []
    if pinned == "cuda" and not cuda:
        raise ConfigError("device: cuda pinned, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    if pinned == "mps":
        if not _mps_available():
            raise ConfigError("device: mps pinned, but torch.backends.mps.is_available() is False")
        if method == "qlora":
            raise ConfigError("device: mps pinned, but QLoRA needs bitsandbytes, which has no MPS kernels; "
                              "pin cpu or cuda")
    device = pinned
    if device is None:
        if cuda:
            device = "cuda"
        elif _mps_available() and method != "qlora":
            device = "mps"
        else:
            if _mps_available():
                notes.append("MPS available, but QLoRA (bitsandbytes) has no MPS kernels: ran on the CPU")
            device = "cpu"
    if device == "mps":
        notes.append(MPS_NOTE)
    index = None
    name = device
    if device == "cuda":
        index = local_rank()
        if index >= gpus:
            raise ConfigError(f"process LOCAL_RANK {index} but only {gpus} visible GPU(s)")
        name = torch.cuda.get_device_name(index)
        if gpus > world_size():
            notes.append(f"{gpus} GPUs visible to {world_size()} process(es): each process uses one GPU "
                         f"(cuda:{index} here), the others stay idle; DataParallel is never used. "
                         "Ask for processes (DDP) to use more, or set CUDA_VISIBLE_DEVICES")
    return Placement(device, index, "pinned" if pinned else "auto", name, gpus, tuple(notes))


def one_gpu_per_process(args) -> str | None:
    """Make a ``transformers.TrainingArguments`` use one GPU per process (never DataParallel).

    The Trainer wraps a model in ``torch.nn.DataParallel`` when ``args.n_gpu > 1``, which a
    single process gets whenever several GPUs are visible (``TrainingArguments._setup_devices``:
    ``_n_gpu = torch.cuda.device_count()``). This sets ``n_gpu`` to 1, as the Trainer itself does
    for model-parallel models; the device stays ``cuda:0`` of the visible ones.

    Args:
        args: a ``TrainingArguments`` (its device set up by reading ``args.device``).

    Returns:
        A note for the record when GPUs were left idle, else ``None``.
    """
    _ = args.device  # sets up devices (and _n_gpu) once; later reads keep the value set here
    n = args.n_gpu
    if n <= 1:
        return None
    args._n_gpu = 1
    return (f"{n} GPUs visible to one process: trained on one ({args.device}); DataParallel is never used "
            "(set processes for DDP)")
