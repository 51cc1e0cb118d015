"""Pieces plugged into the HF Trainer: complete-checkpoint markers, a step timer, and a
guard that stops training on a non-finite loss."""

from __future__ import annotations

import math
import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

from bashkir_peft.atomic import write_json_atomic
from bashkir_peft.train.checkpoints import mark_complete, prune_checkpoints


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class GuardedTrainer(Trainer):
    """``Trainer`` that raises :class:`NonFiniteLossError` as soon as a micro-batch's loss is
    not finite, before the optimizer applies that step (so no checkpoint holds it).

    A ``compute_loss_func`` with a ``model_inputs`` dict (a
    :class:`~bashkir_peft.train.loss.ChunkedCausalLMLoss`: the hidden states, and the last
    position's logits only) gets those extra inputs passed to the model's forward.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        extra = getattr(self.compute_loss_func, "model_inputs", None)
        if extra and "labels" in inputs:
            # the loss calls the output layer outside the model's forward: under the same
            # mixed-precision autocast that accelerate puts around that forward
            with self.accelerator.autocast():
                return super().compute_loss(model, {**inputs, **extra}, return_outputs, num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(loss.isfinite().all()):
            raise NonFiniteLossError(
                f"non-finite training loss ({float(loss)}) at step {self.state.global_step + 1}; "
                "lower learning_rate or check the data"
            )
        return loss

    def restore(self, checkpoint: str | Path) -> None:
        """Load a checkpoint's weights and trainer state (steps, log history) without training.

        For a run whose budget is spent at that checkpoint (its step >= ``max_steps``): the
        Trainer, resumed from it, would take one optimizer step more (transformers 5.x checks
        the budget only after a step). The weights load as ``train(resume_from_checkpoint=...)``
        loads them; the optimizer is not needed.
        """
        from transformers.trainer_callback import TrainerState

        self._load_from_checkpoint(str(checkpoint))
        self.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))


class CompleteCheckpoints(TrainerCallback):
    """Mark each checkpoint complete once the Trainer has written it, then prune older ones.

    Args:
        keep: complete checkpoints to keep (>= 1). Pruning happens only after the new one
            is marked, so a complete checkpoint always exists from the first save on.
    """

    def __init__(self, keep: int = 2):
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if path.is_dir():
            mark_complete(path)
            prune_checkpoints(args.output_dir, self.keep)
        return control


class OnProgress(TrainerCallback):
    """Call ``update()`` after every logging step and every checkpoint (e.g. to write the
    record of this attempt, its cost so far, so a killed attempt's cost is not lost)."""

    def __init__(self, update):
        self.update = update

    def on_log(self, args, state, control, **kwargs):
        self.update()

    def on_save(self, args, state, control, **kwargs):
        self.update()


class StepTimer(TrainerCallback):
    """Time spent inside optimizer steps (forward, backward, update; not evaluation or saving).

    Attributes:
        step_times: seconds per optimizer step, in order.
    """

    def __init__(self):
        self.step_times: list[float] = []
        self._t0: float | None = None

    @staticmethod
    def _sync():
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._t0 is not None:
            self._sync()
            self.step_times.append(time.perf_counter() - self._t0)
            self._t0 = None

    @property
    def total(self) -> float:
        return math.fsum(self.step_times)


class ProgressFile(TrainerCallback):
    """Rewrite ``path`` (a run's ``progress.json``) after every optimizer step with
    ``{"step", "max_steps", "epoch"}``, so the grid (another process) can show steps inside the
    training stage. Only the main process writes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_json_atomic(self.path, {"step": state.global_step, "max_steps": state.max_steps,
                                          "epoch": state.epoch})
        return control

