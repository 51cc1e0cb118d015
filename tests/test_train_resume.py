"""Resume: a training process killed with SIGKILL in the middle of writing a checkpoint
continues, when started again with the same parameters, from its last complete
checkpoint (the half-written one is skipped), and ends with the validation loss of an
uninterrupted run (within 1e-3 relative)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

from bashkir_peft.config.train import TrainParams
from bashkir_peft.train.run import run_training
from test_train import TINY, make_data_dir

# Runs in a child process: SIGKILL itself while checkpoint-KILL_STEP is being written,
# after the adapter weights and the optimizer state, before the RNG and trainer state.
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import transformers
    from bashkir_peft.train.run import run_training

    params, kill_step = json.loads(sys.argv[1]), int(sys.argv[2])
    save_rng_state = transformers.Trainer._save_rng_state

    def killed_mid_save(self, output_dir):
        if self.state.global_step == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)
        return save_rng_state(self, output_dir)

    transformers.Trainer._save_rng_state = killed_mid_save
    run_training(params)
""")


def test_killed_run_resumes_from_last_complete_checkpoint(tmp_path, corpus_dir):
    data = make_data_dir(corpus_dir, tmp_path / "data")
    # LoRA with dropout on (the RNG state must be restored too), 4 steps, a checkpoint every step;
    # killed while writing checkpoint-3, so the restart must skip it and resume from checkpoint-2.
    common = TINY | {"method": "lora", "max_steps": 4, "save_steps": 1, "eval_steps": 4, "data_dir": str(data)}
    reference = run_training(TrainParams(**(common | {"output_dir": str(tmp_path / "reference")})))
    assert reference.status == "finished"

    run = tmp_path / "interrupted"
    params = TrainParams(**(common | {"output_dir": str(run)}))
    child = subprocess.run([sys.executable, "-c", CHILD, params.model_dump_json(), "3"],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert (run / "checkpoints" / "checkpoint-2" / ".complete").is_file()
    half = run / "checkpoints" / "checkpoint-3"
    assert half.is_dir() and not (half / ".complete").exists() and not (half / "trainer_state.json").exists()
    assert json.loads((run / "train.json").read_text())["status"] == "running"

    resumed = run_training(params)
    assert resumed.status == "finished"
    assert [s.resumed_from for s in resumed.sessions] == [None, "checkpoint-2"]
    assert resumed.sessions[1].skipped_incomplete_checkpoints == ["checkpoint-3"]
    assert resumed.sessions[1].steps == 2 and resumed.global_step == 4
    ref_loss, got = reference.final_eval.eval_loss, resumed.final_eval.eval_loss
    assert abs(got - ref_loss) <= 1e-3 * abs(ref_loss), (got, ref_loss)
    # the training losses after the resume point follow the same trajectory
    ref_train = {r.step: r.loss for r in reference.losses.train}
    for r in resumed.losses.train:
        assert abs(r.loss - ref_train[r.step]) <= 1e-3 * abs(ref_train[r.step]), r
