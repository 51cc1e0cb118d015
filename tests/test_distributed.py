"""One cell on several processes (DDP under torchrun, gloo on the CPU): the same loss curve
as one process with the same global batch, tokens and memory counted for every process, and
a resume from a checkpoint with 2 processes that continues the uninterrupted curve.

Stated tolerances: training losses within 1e-4 relative (the same batches in the same order:
accelerate shards each global batch across processes; DDP averages the two halves' gradients,
which equals the gradient of the whole batch up to float32 summation order); validation
losses within 1e-3 relative (the evaluation set is split across processes in per-process
batches, so the per-batch means are weighted differently). Dropout is off (each process has
its own random stream).
"""

from __future__ import annotations

import shutil

import pytest
import torch

from bashkir_peft.config.train import TrainParams
from bashkir_peft.models.loading import load_model
from bashkir_peft.train.run import run_training
from test_train import TINY, make_data_dir

STEPS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory, corpus_dir):
    root = tmp_path_factory.mktemp("ddp")
    data = make_data_dir(corpus_dir, root / "data", n_train=48)
    loaded = load_model("tiny-gpt2", "full", placement=None)
    loaded.model.config.update({"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    loaded.model.save_pretrained(root / "model")
    loaded.tokenizer.save_pretrained(root / "model")
    common = {k: v for k, v in TINY.items() if k != "per_device_train_batch_size"} | dict(
        model=str(root / "model"), method="full", data_dir=str(data), max_steps=STEPS, eval_steps=2,
        save_steps=2, learning_rate=1e-3, device="cpu")
    one = run_training(TrainParams(**common, per_device_train_batch_size=4, output_dir=str(root / "one")))
    two_dir = root / "two"
    two = run_training(TrainParams(**common, per_device_train_batch_size=2, processes=2, output_dir=str(two_dir)))
    return common, one, two, two_dir


def _train_losses(record) -> list[float]:
    return [h.loss for h in record.losses.train]


def test_two_processes_follow_the_one_process_loss_curve(setup):
    _, one, two, _ = setup
    assert one.status == two.status == "finished"
    assert len(_train_losses(two)) == STEPS
    assert _train_losses(two) == pytest.approx(_train_losses(one), rel=1e-4)
    assert [h.eval_loss for h in two.losses.eval] == pytest.approx([h.eval_loss for h in one.losses.eval],
                                                                      rel=1e-3)
    assert _train_losses(one)[-1] < _train_losses(one)[0]  # it trained


def test_tokens_and_memory_count_every_process(setup):
    _, one, two, _ = setup
    assert two.device.processes == 2 and one.device.processes == 1
    assert two.tokens_seen == one.tokens_seen == STEPS * 4 * 16  # steps x global batch x block_size
    session = two.sessions[-1]
    assert session.tokens == two.tokens_seen
    assert len(session.process_costs) == 2
    assert two.cost.peak_rss_mib == max(c.peak_rss_mib for c in session.process_costs)


def test_two_processes_resume_from_a_checkpoint(setup):
    """Drop the last checkpoint and the final weights of the 2-process run: started again,
    it resumes (2 processes) from checkpoint-2 and continues the same curve."""
    common, _, two, two_dir = setup
    from bashkir_peft.records import TrainRecord, read_record, write_record

    shutil.rmtree(two_dir / "final")
    shutil.rmtree(two_dir / "checkpoints" / f"checkpoint-{STEPS}")
    interrupted = read_record(two_dir / "train.json", TrainRecord).model_copy(update={"status": "running"})
    write_record(two_dir / "train.json", interrupted)
    resumed = run_training(TrainParams(**common, per_device_train_batch_size=2, processes=2,
                                       output_dir=str(two_dir)))
    assert resumed.status == "finished" and resumed.global_step == STEPS
    assert resumed.sessions[-1].resumed_from == "checkpoint-2" and resumed.sessions[-1].steps == STEPS - 2
    assert _train_losses(resumed)[-2:] == pytest.approx(_train_losses(two)[-2:], rel=1e-4)
    assert resumed.final_eval.eval_loss == pytest.approx(two.final_eval.eval_loss, rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_qlora_each_process_on_its_own_gpu(setup, tmp_path):
    common, _, _, _ = setup
    record = run_training(TrainParams(**(common | {"model": "tiny-llama", "method": "qlora", "device": None}),
                                      per_device_train_batch_size=2, processes=2, output_dir=str(tmp_path / "q")))
    assert record.status == "finished" and record.device.processes == 2
    assert all(c.peak_gpu_mib > 0 for c in record.sessions[-1].process_costs)
