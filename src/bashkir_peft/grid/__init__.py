"""The experiment grid: grid files, run ids, the stage table, the runner (papermill over the
stage notebooks), locks and the Slurm executor (``bashkir-peft grid run``)."""
