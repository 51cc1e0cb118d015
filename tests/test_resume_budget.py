"""Resume never trains past the budget (issue 31): a grid and its kernel killed (kill -9) after
``checkpoint-<max_steps>`` is complete, during the final save, resume to the records, adapter and
metrics of an uninterrupted run. The schedule is constant, so one optimizer step too many
would change the adapter and every metric (a linear schedule ends at learning rate 0 and
would hide it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import yaml

from bashkir_peft.records import RunFiles
from test_faults import cli, states

# Started in the kernels of the killed grid: SIGKILL the grid process and the kernel when the
# training stage is about to save its final adapter (checkpoint-<max_steps> and the final
# evaluation are done).
KILL_AT_FINAL_SAVE = textwrap.dedent("""
    import os, signal
    import bashkir_peft.train.run as run

    def _save_final(*args, **kwargs):
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    run._save_final = _save_final
""")


def test_kill_after_last_checkpoint_resumes_without_an_extra_step(smoke_grid, smoke_copy, capfd, tmp_path):
    grid = yaml.safe_load(smoke_grid["grid_file"].read_text())
    grid["train"]["lr_scheduler_type"] = "constant"
    grid["stages"] = ["train", "evaluate"]  # generation and downstream read the same adapter: not needed here
    grid["evaluate"].pop("external_sets")
    grid_file = tmp_path / "smoke.yaml"  # same grid name: the copies' prepared data is reused
    grid_file.write_text(yaml.safe_dump(grid, sort_keys=False))
    max_steps = grid["train"]["max_steps"]
    assert max_steps % grid["train"]["save_steps"] == 0  # a checkpoint at the last step

    def args(runs):
        return ["grid", "run", str(grid_file), "--runs-dir", str(runs), "--no-progress",
                "--corpus", str(smoke_grid["corpus"]), "--only", "method=lora", "--only", "label=none"]

    reference_runs = tmp_path / "reference"
    shutil.copytree(smoke_grid["runs"], reference_runs, symlinks=True)
    code, _, err = cli(capfd, *args(reference_runs))
    assert code == 0, err

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-kill.py").write_text(KILL_AT_FINAL_SAVE)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    killed = subprocess.run([sys.executable, "-m", "bashkir_peft.cli", *args(smoke_copy["runs"])], env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [run_dir] = [p.parent for p in smoke_copy["root"].glob(f"*/{RunFiles.TRAIN}")
                 if json.loads(p.read_text())["status"] == "running"]
    ref = reference_runs / smoke_copy["root"].name / run_dir.name
    assert (run_dir / RunFiles.CHECKPOINTS / f"checkpoint-{max_steps}" / ".complete").is_file()
    assert not (run_dir / RunFiles.FINAL).exists()

    code, _, err = cli(capfd, *args(smoke_copy["runs"]))
    assert code == 0, err
    got, want = (json.loads((d / RunFiles.TRAIN).read_text()) for d in (run_dir, ref))
    assert got["status"] == "finished" and got["global_step"] == want["global_step"] == max_steps
    assert got["tokens_seen"] == want["tokens_seen"]
    assert got["losses"] == want["losses"] and got["final_eval"] == want["final_eval"]
    assert [(s["resumed_from"], s["steps"]) for s in got["sessions"][1:]] == [(f"checkpoint-{max_steps}", 0)]
    for name in ("final/adapter_model.safetensors", RunFiles.EVAL_DOCUMENTS):
        assert (run_dir / name).read_bytes() == (ref / name).read_bytes(), name
    got, want = (json.loads((d / RunFiles.EVAL).read_text())["evaluations"] for d in (run_dir, ref))
    assert {k: v["metrics"] for k, v in got.items()} == {k: v["metrics"] for k, v in want.items()}
    code, out, _ = cli(capfd, "grid", "verify", grid_file, "--runs-dir", smoke_copy["runs"],
                       "--only", "method=lora", "--only", "label=none")
    assert code == 0 and states(out)[run_dir.name] == "finished"


# Runs in a child process: SIGKILL itself in the final save of a training run.
KILLED_IN_FINAL_SAVE = textwrap.dedent("""
    import json, os, signal, sys
    import bashkir_peft.train.run as run

    def _save_final(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    run._save_final = _save_final
    run.run_training(json.loads(sys.argv[1]))
""")


def test_budget_spent_at_a_checkpoint_between_evaluations_resumes_to_the_same_final_evaluation(corpus_dir, tmp_path):
    """The last evaluation step (2) is not the last step (3): the resumed run's fresh final
    evaluation of the restored weights equals the uninterrupted run's, and its losses too."""
    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.train.run import run_training
    from test_train import TINY, make_data_dir

    common = TINY | {"method": "lora", "max_steps": 3, "save_steps": 3, "eval_steps": 2,
                     "lr_scheduler_type": "constant", "data_dir": str(make_data_dir(corpus_dir, tmp_path / "data"))}
    reference = run_training(TrainParams(**(common | {"output_dir": str(tmp_path / "reference")})))
    params = TrainParams(**(common | {"output_dir": str(tmp_path / "run")}))
    child = subprocess.run([sys.executable, "-c", KILLED_IN_FINAL_SAVE, params.model_dump_json()],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    resumed = run_training(params)
    assert (resumed.global_step, resumed.tokens_seen) == (reference.global_step, reference.tokens_seen) == (3, 192)
    assert resumed.losses == reference.losses and resumed.final_eval == reference.final_eval
    assert resumed.sessions[-1].resumed_from == "checkpoint-3" and resumed.sessions[-1].steps == 0
