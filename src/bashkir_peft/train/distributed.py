"""One training run on several processes: DDP under torchrun, started from the training stage.

A cell that asks for ``processes: N`` (> 1) is trained by ``N`` copies of
:func:`bashkir_peft.train.run.run_training`, launched by torchrun
(``python -m torch.distributed.run --standalone --nproc-per-node N``); the HF Trainer
(through accelerate) wraps the model in ``DistributedDataParallel`` and shards each global
batch across the processes. Each process takes the GPU of its ``LOCAL_RANK`` (QLoRA's 4-bit
weights are placed there at load time); on the CPU the processes talk over gloo. Only the
main process (``RANK`` 0) writes the record, checkpoints' markers and the final weights;
``tokens_seen`` and throughput count every process; memory is gathered from every process.
FSDP (full fine-tuning that does not fit one GPU) is not wired in.

Untested on GPUs until a multi-GPU machine runs ``tests/test_distributed.py``'s gpu test.
"""

from __future__ import annotations

import subprocess
import sys

from bashkir_peft.records import RunFiles, TrainRecord, read_record_if_any


def torchrun_command(params, nproc: int) -> list[str]:
    """The torchrun command line that trains ``params`` on ``nproc`` processes
    (:mod:`bashkir_peft.train.worker` in each, the parameters as JSON)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "bashkir_peft.train.worker", params.model_dump_json()]


def launch(params) -> TrainRecord:
    """Train ``params`` (a :class:`~bashkir_peft.config.train.TrainParams` with ``processes > 1``)
    under torchrun and return the record the main process wrote.

    Raises:
        RuntimeError: torchrun exited non-zero (the record's reason, when it wrote one).
    """
    params.out_dir.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run(torchrun_command(params, params.processes)).returncode
    record = read_record_if_any(params.out_dir / RunFiles.TRAIN, TrainRecord)
    if rc != 0:
        reason = record.reason if record is not None and record.status == "failed" else None
        raise RuntimeError(f"training under torchrun ({params.processes} processes) exited with {rc}"
                           + (f": {reason}" if reason else ""))
    if record is None:
        raise RuntimeError(f"training under torchrun wrote no {RunFiles.TRAIN} in {params.out_dir}")
    return record


def gather_costs(cost: dict) -> list[dict]:
    """Every process's cost (``ResourceMeter.result()``), in rank order; ``[cost]`` outside DDP."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [cost]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, cost)
    return out
