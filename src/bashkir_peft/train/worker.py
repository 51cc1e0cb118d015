"""One process of a multi-process training run, started by torchrun
(:func:`bashkir_peft.train.distributed.launch`): ``python -m bashkir_peft.train.worker PARAMS_JSON``."""

from __future__ import annotations

import sys

from bashkir_peft.config.train import TrainParams
from bashkir_peft.train.run import run_training


def main(argv: list[str] | None = None) -> int:
    """Train the parameters given as JSON in this torchrun process; 0 when the run finished."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bashkir_peft.train.worker PARAMS_JSON (started by torchrun)", file=sys.stderr)
        return 2
    record = run_training(TrainParams.model_validate_json(argv[0]))
    return 0 if record.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
