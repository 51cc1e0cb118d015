"""Training throughput: ours (bashkir_peft.train.run.run_training) vs a plain HF Trainer + peft
baseline set up the usual way (the transformers causal-LM example recipe, run_clm.py).

For smollm2-135m, methods full / lora / qlora, block_size 128 and 256, batch 8: 2 warm-up
and 10 timed optimizer steps each (and one untimed last step), timed by the same callback in
both (forward, backward and optimizer step; not data loading, evaluation or saving), on the
same documents; ``--ours-set FIELD=VALUE`` sets a training field of ours (a lever off by
default, e.g. ``lora_dropout_sampler=bulk``). Ours and the baseline run as two processes that take turns step by step
(each waits for its turn before a step and passes it on after), so the two never compute at
the same time and each pair of adjacent steps sees the same machine: on a shared VM, load
drifts by more than the difference being measured. ``--repeats`` such runs per pair (default
2, who starts alternates), timed steps pooled. Prints tokens/s (from the median pooled step
time) with each run's own figure, the peak RSS sampled during ``train()`` (the same span in
both), the ratio ours/baseline on the medians, and the median of the per-step ratios of
adjacent steps (baseline step time / ours), which the drift between runs cannot bias.

First, in the same run, the machine's bound: fp32 GEMM throughput with the same threads at the
model's matrix shapes (each projection of a decoder layer and the output layer, M = batch x
block_size tokens), weighted by their FLOPs; a training step costs about 6 x P FLOPs per token
for full fine-tuning and 4 x P for adapters (forward 2P, backward 2P for the activations' and,
full only, 2P for the weights' gradients; Kaplan et al. 2020, sec. 2.1), P = the weights the
matrix products use (the output layer included, tied or not). Bound tokens/s = GEMM FLOP/s /
(6P or 4P). Each row prints its share of the bound and the issue's target: 1.5 x the baseline or
75 % of the bound, whichever is lower. After the pairs the bound is measured again, and the
summary's shares and targets are taken against the higher of the two probes (the stricter).

``--profile``: after each pair, one more run of ours alone, ``torch.profiler`` (CPU; shapes
and FLOPs not recorded: recording them doubled a LoRA step here) over the first step after the
warm-up (forward, backward and optimizer step), its self CPU time grouped by what the operators
do (:data:`GROUPS`); the matrix products' rate (the bound's FLOP count, 6P or 4P a token, over
their self time) is set beside the bound's, and the step's time beyond the target's is named.
The same run then times ``ALONE`` more steps with no profiler and no partner process: ours
alone, beside ours taking turns.

Usage:
    BASHKIR_PEFT_TOKENIZERS=../shared/tokenizers \\
    .venv/bin/python benchmarks/train_throughput.py [--methods full lora qlora] [--blocks 128 256]
        [--repeats 2] [--corpus ../shared/corpus/bashkir-demo.jsonl.gz] [--threads 2] [--json out.json]
        [--ours-set lora_dropout_sampler=bulk] [--profile]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"
BATCH = 8
WARMUP, TIMED = 2, 10
# one more, untimed step: the partner's last timed step never overlaps this process's after-training work
STEPS = WARMUP + TIMED + 1
OTHER = {"ours": "baseline", "baseline": "ours"}
N_DOCS = 200  # training documents: far more tokens than 12 x 8 x 256
ALONE = 4  # the profile run's steps after the profiled one, timed without the profiler or a partner
# what the profiled operators do, by the first pattern their name contains (else "other")
GROUPS = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("dropout sampling", ("aten::bernoulli", "aten::dropout", "aten::native_dropout", "bulk_dropout")),
    ("4-bit dequantization", ("bitsandbytes", "dequantize")),
    ("optimizer (AdamW)", ("_fused_adam", "_foreach_", "aten::addcdiv", "aten::addcmul", "aten::lerp", "aten::sqrt")),
    ("log-softmax and loss", ("log_softmax", "nll_loss", "cross_entropy")),
    ("attention", ("scaled_dot_product", "flash_attention", "aten::_softmax")),
    ("embedding gradient", ("embedding_dense_backward", "embedding_backward", "index_add", "index_put")),
    ("norms and activations", ("aten::rsqrt", "aten::pow", "aten::mean", "aten::silu", "aten::sigmoid")),
    ("element-wise multiply / add", ("aten::mul", "aten::add", "aten::div", "aten::sub", "aten::where", "aten::neg")),
    ("copies, fills, allocation", ("aten::copy_", "aten::fill_", "aten::zero_", "aten::clone", "aten::cat",
                                   "aten::empty", "aten::contiguous", "aten::to", "aten::_to_copy")),
)


def gemm_bound(block: int, threads: int) -> dict:
    """fp32 GEMM throughput at the model's matrix shapes (module docstring;
    :func:`bashkir_peft.grid.estimate.gemm_gflops`, the grid's speed probe).

    Returns ``{"gflops", "params_in_matmuls", "shapes"}``: FLOP-weighted GFLOP/s of the
    model's weight matrices at M = BATCH x ``block`` rows, and P.
    """
    from bashkir_peft.grid.estimate import gemm_gflops, matmul_shapes
    from bashkir_peft.grid.plan import meta_model

    shapes = matmul_shapes(meta_model(MODEL))
    gflops, n_params = gemm_gflops(shapes, BATCH * block, threads, reps=10)
    return {"gflops": gflops, "params_in_matmuls": n_params, "shapes": shapes}


def bound_tokens_per_s(bound: dict, method: str) -> float:
    """Training tokens/s at the GEMM rate of ``bound`` (:func:`gemm_bound`) for ``method``."""
    from bashkir_peft.grid.estimate import train_flops_per_token

    return bound["gflops"] * 1e9 / train_flops_per_token(method, bound["params_in_matmuls"])


def make_data(corpus: Path, out: Path) -> Path:
    """A data-prep-shaped folder from the first documents of a .jsonl.gz corpus."""
    import pandas as pd

    rows = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"id": r["id"], "source": r.get("source", ""), "text": r["text"]})
            if len(rows) == N_DOCS + 2:
                break
    from bashkir_peft.data.folder import write_presplit_folder

    splits = {"train": rows[:N_DOCS], "validation": rows[N_DOCS:N_DOCS + 1], "test": rows[N_DOCS + 1:]}
    write_presplit_folder(out, {k: pd.DataFrame(v) for k, v in splits.items()}, "benchmark",
                          {"kind": "file", "location": str(corpus)})
    return out


def _timer(impl: str, turns: Path):
    """The step timer, taking turns with the other implementation's process through the FIFOs
    in ``turns``: it waits for its turn before each step and passes the turn on after it, so
    the two never compute at the same time and adjacent steps see the same machine."""
    from bashkir_peft.train.callbacks import StepTimer

    class TurnTakingTimer(StepTimer):
        def __init__(self):
            super().__init__()
            # O_RDWR: opening a FIFO so never blocks, and the last pass cannot fail after the other exits
            self.mine = os.open(turns / f"turn-{impl}", os.O_RDWR)
            self.theirs = os.open(turns / f"turn-{OTHER[impl]}", os.O_RDWR)
            self.ready = os.open(turns / "ready", os.O_RDWR)

        def on_train_begin(self, args, state, control, **kwargs):
            os.write(self.ready, b"r")  # loaded: the parent gives the first turn once both are

        def on_step_begin(self, args, state, control, **kwargs):
            os.read(self.mine, 1)
            super().on_step_begin(args, state, control, **kwargs)

        def on_step_end(self, args, state, control, **kwargs):
            super().on_step_end(args, state, control, **kwargs)
            os.write(self.theirs, b"t")

    return TurnTakingTimer()


def _profiler(step: int):
    """A step timer that also profiles optimizer step ``step`` (0-based) with ``torch.profiler``
    (CPU); after training, ``.events`` holds that step's ``key_averages()`` and ``.step_times``
    every step's wall time [s] (the profiled one's with the profiler on)."""
    from torch.profiler import ProfilerActivity, profile

    from bashkir_peft.train.callbacks import StepTimer

    class StepProfiler(StepTimer):
        def __init__(self):
            super().__init__()
            self.prof, self.events = None, None

        def on_step_begin(self, args, state, control, **kwargs):
            if len(self.step_times) == step:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()
            super().on_step_begin(args, state, control, **kwargs)

        def on_step_end(self, args, state, control, **kwargs):
            super().on_step_end(args, state, control, **kwargs)
            if len(self.step_times) == step + 1:
                self.prof.__exit__(None, None, None)
                self.events = self.prof.key_averages()

    return StepProfiler()


def group_profile(events, step_s: float, alone_s: list[float]) -> dict:
    """Self CPU time of a profiled step's operators (``key_averages()``) summed by :data:`GROUPS`.

    Returns ``{"step_s", "self_cpu_s", "groups": {group: seconds}, "top": [(operator, seconds,
    calls)], "alone_step_s"}``: the step's wall time [s], the summed self CPU time [s] (the
    profiler's overhead included), seconds per group, the ten costliest operators, and the wall
    times [s] of the steps after it (``alone_s``: no profiler, no partner).
    """
    groups = {name: 0.0 for name, _ in GROUPS} | {"other": 0.0}
    ops = []
    for e in events:
        sec = e.self_cpu_time_total / 1e6
        if sec <= 0:
            continue
        ops.append((e.key, sec, e.count))
        name = next((g for g, pats in GROUPS if any(pat in e.key for pat in pats)), "other")
        groups[name] += sec
    ops.sort(key=lambda o: -o[1])
    return {"step_s": step_s, "self_cpu_s": sum(groups.values()), "groups": groups, "top": ops[:10],
            "alone_step_s": alone_s}


def run_ours(method: str, block: int, data_dir: Path, out: Path, timer, overrides: dict,
             steps: int = STEPS) -> dict:
    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.train.run import run_training

    params = TrainParams(model=MODEL, method=method, block_size=block, per_device_train_batch_size=BATCH,
                         max_steps=steps, eval_steps=10_000, save_steps=10_000, logging_steps=steps,
                         max_eval_documents=1, data_dir=str(data_dir), output_dir=str(out), **overrides)
    record = run_training(params, callbacks=[timer])
    assert record.status == "finished", record.reason
    # run_training's own ResourceMeter spans trainer.train(), as the baseline's does below;
    # a second meter here would add a second sampling thread to ours only
    return {"step_times": timer.step_times, "peak_rss_mib": record.cost.peak_rss_mib,
            "trainable_params": record.trainable_params}


def run_baseline(method: str, block: int, data_dir: Path, out: Path, timer) -> dict:
    """The usual recipe: from_pretrained (+ BitsAndBytesConfig for QLoRA), peft's
    prepare_model_for_kbit_training + get_peft_model, datasets.map tokenization and
    run_clm's group_texts, a default Trainer."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from bashkir_peft.models.loading import resolve_model
    from bashkir_peft.models.registry import get_entry
    from bashkir_peft.provenance import ResourceMeter

    set_seed(42)
    path = resolve_model(MODEL).location
    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs = {"dtype": torch.float32}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if method in ("lora", "qlora"):
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias="none",
                                                 task_type="CAUSAL_LM",
                                                 target_modules=get_entry(MODEL).target_modules))
    raw = load_dataset("parquet", data_files={"train": str(data_dir / "train.parquet")})["train"]

    def tokenize(batch):
        return tokenizer([t + tokenizer.eos_token for t in batch["text"]], add_special_tokens=False)

    def group_texts(examples):  # run_clm.py
        concatenated = {k: sum(examples[k], []) for k in examples}
        total = (len(concatenated["input_ids"]) // block) * block
        result = {k: [t[i:i + block] for i in range(0, total, block)] for k, t in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    ds = raw.map(tokenize, batched=True, remove_columns=raw.column_names).map(group_texts, batched=True)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=BATCH, max_steps=STEPS,
                             learning_rate=5e-5 if method == "full" else 2e-4, save_strategy="no",
                             logging_steps=STEPS, report_to="none", disable_tqdm=True, use_cpu=True, seed=42)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator,
                      callbacks=[timer])
    with ResourceMeter() as meter:
        trainer.train()
    return {"step_times": timer.step_times, "peak_rss_mib": meter.result()["peak_rss_mib"]}


def child(impl: str, method: str, block: int, data_dir: Path, threads: int, turns: Path | None,
          overrides: dict) -> None:
    """One implementation's run in this process: ``impl`` "ours" or "baseline" taking turns
    through ``turns``, or "profile" (ours alone, step ``WARMUP`` profiled); prints its result
    as one ``RESULT <json>`` line."""
    from bashkir_peft.runtime import configure_threads

    configure_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        if impl == "baseline":
            result = run_baseline(method, block, data_dir, out, _timer(impl, turns))
        else:
            callback = _profiler(WARMUP) if impl == "profile" else _timer(impl, turns)
            result = run_ours(method, block, data_dir, out, callback, overrides,
                              WARMUP + 1 + ALONE if impl == "profile" else STEPS)
            if impl == "profile":
                result = group_profile(callback.events, callback.step_times[WARMUP], callback.step_times[WARMUP + 1:])
    print("RESULT " + json.dumps(result), flush=True)


def summarize(runs: list[dict], block: int) -> dict:
    """Pool the timed steps of an implementation's runs (processes) of one pair.

    Returns the median step time over all pooled timed steps, tokens/s from it, each
    run's own tokens/s (the spread between runs), the pooled step times [s] and the
    largest peak RSS [MiB].
    """
    pooled, per_run = [], []
    for r in runs:
        timed = r["step_times"][WARMUP:WARMUP + TIMED]
        assert len(timed) == TIMED, r["step_times"]
        pooled += timed
        per_run.append(BATCH * block / statistics.median(timed))
    med = statistics.median(pooled)
    return {"median_step_s": med, "tokens_per_s": BATCH * block / med, "per_run_tokens_per_s": per_run,
            "timed_step_s": pooled,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def _child_command(impl: str, method: str, block: int, data_dir: Path, threads: int, turns: Path | None,
                   ours_set: list[str]) -> list[str]:
    """The command line of one :func:`child` process."""
    return ([sys.executable, __file__, "--threads", str(threads), "--child", impl, method, str(block), str(data_dir)]
            + (["--turns", str(turns)] if turns else []) + [x for kv in ours_set for x in ("--ours-set", kv)])


def run_profile(method: str, block: int, data_dir: Path, threads: int, ours_set: list[str]) -> dict:
    """Ours alone with step ``WARMUP`` profiled (:func:`group_profile`'s dict)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(_child_command("profile", method, block, data_dir, threads, None, ours_set),
                          capture_output=True, text=True, env=env)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not line:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"profile {method} {block} failed (exit {done.returncode})")
    return json.loads(line[0][7:])


def print_profile(prof: dict, method: str, block: int, bound: dict, target_tokens_per_s: float) -> None:
    """The profile's groups, the matrix products' rate against the bound's, and the step's
    time beyond the target's step time."""
    from bashkir_peft.grid.estimate import train_flops_per_token

    target_s = BATCH * block / target_tokens_per_s
    total = prof["self_cpu_s"]
    mm_gflop = train_flops_per_token(method, bound["params_in_matmuls"]) * BATCH * block / 1e9
    mm_s = prof["groups"]["matrix products"]
    mm_rate = mm_gflop / mm_s
    print(f"profile {method} block {block}: step {prof['step_s']:.2f} s (profiled; self CPU {total:.2f} s), "
          f"target step {target_s:.2f} s, beyond it {prof['step_s'] - target_s:+.2f} s; matrix products "
          f"{mm_gflop:.0f} GFLOP in {mm_s:.2f} s = {mm_rate:.0f} GFLOP/s "
          f"({mm_rate / bound['gflops']:.2f} of the bound's {bound['gflops']:.0f})", flush=True)
    alone = statistics.median(prof["alone_step_s"])
    print(f"    ours alone, {len(prof['alone_step_s'])} steps after it (no profiler, no partner): median {alone:.2f} s "
          f"= {BATCH * block / alone:.1f} tokens/s, {BATCH * block / alone / bound_tokens_per_s(bound, method):.2f} "
          f"of the bound (steps {' '.join(f'{x:.2f}' for x in prof['alone_step_s'])} s)")
    for name, sec in sorted(prof["groups"].items(), key=lambda g: -g[1]):
        if sec > 0:
            print(f"    {name:30s} {sec:6.2f} s  {sec / total:6.1%}")
    print("    costliest operators: " + "; ".join(f"{k} {sec:.2f} s ({n})" for k, sec, n in prof["top"][:6]))


def run_pair(method: str, block: int, data_dir: Path, threads: int, first: str,
             ours_set: list[str]) -> dict[str, dict]:
    """Run ours and the baseline as two processes that take turns step by step, ``first``
    starting. Returns each one's result (step times, peak RSS)."""
    with tempfile.TemporaryDirectory() as tmp:
        turns = Path(tmp)
        for name in ("turn-ours", "turn-baseline", "ready"):
            os.mkfifo(turns / name)
        ready = os.open(turns / "ready", os.O_RDWR)
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        procs, logs = {}, {}
        for impl in OTHER:
            logs[impl] = (turns / f"{impl}.out", turns / f"{impl}.err")
            with open(logs[impl][0], "w") as out, open(logs[impl][1], "w") as err:
                procs[impl] = subprocess.Popen(
                    _child_command(impl, method, block, data_dir, threads, turns, ours_set),
                    stdout=out, stderr=err, env=env)

        def check_alive(training_began: bool = True):
            """Stop both if one failed, or (before training) exited at all: the other would wait forever."""
            for impl, p in procs.items():
                if p.poll() not in ((None, 0) if training_began else (None,)):
                    for q in procs.values():
                        q.kill()
                    print(logs[impl][1].read_text()[-3000:], file=sys.stderr)
                    raise SystemExit(f"{impl} {method} {block} failed (exit {p.returncode})")

        loaded = 0
        while loaded < 2:  # both loaded before the first turn: loading never overlaps a timed step
            check_alive(training_began=False)
            if select.select([ready], [], [], 1.0)[0]:
                loaded += len(os.read(ready, 2))
        turn = os.open(turns / f"turn-{first}", os.O_RDWR)
        os.write(turn, b"t")
        while any(p.poll() is None for p in procs.values()):
            check_alive()
            time.sleep(1.0)
        check_alive()
        os.close(turn)
        os.close(ready)
        results = {}
        for impl in OTHER:
            line = [x for x in logs[impl][0].read_text().splitlines() if x.startswith("RESULT ")]
            if not line:
                print(logs[impl][1].read_text()[-3000:], file=sys.stderr)
                raise SystemExit(f"{impl} {method} {block} printed no result")
            results[impl] = json.loads(line[0][7:])
        return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=["full", "lora", "qlora"])
    ap.add_argument("--blocks", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "bashkir-demo.jsonl.gz")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="turn-taking runs per pair (who starts alternates)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--ours-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a training field of ours (TrainParams), e.g. lora_dropout_sampler=bulk; repeatable")
    ap.add_argument("--profile", action="store_true",
                    help="after each pair, profile one step of ours and print where its time goes")
    ap.add_argument("--turns", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=4, metavar=("IMPL", "METHOD", "BLOCK", "DATA_DIR"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    overrides = dict(kv.partition("=")[::2] for kv in a.ours_set)
    if a.child:
        if a.turns is None and a.child[0] != "profile":
            ap.error("--child needs --turns (the parent starts children with both)")
        child(a.child[0], a.child[1], int(a.child[2]), Path(a.child[3]), a.threads, a.turns, overrides)
        return 0
    from pydantic import ValidationError

    from bashkir_peft.config.train import TrainParams

    for method in a.methods:  # bad input: one line before any work
        try:
            TrainParams(model=MODEL, method=method, **overrides)
        except ValidationError as e:
            ap.error(f"--ours-set {a.ours_set} with method {method}: {e.errors()[0]['loc']} {e.errors()[0]['msg']}")

    rows = []
    bounds = {}
    for block in a.blocks:
        bounds[block] = gemm_bound(block, a.threads)
        print(f"bound, block {block}: fp32 GEMM {bounds[block]['gflops']:.1f} GFLOP/s at the model's shapes "
              f"({a.threads} threads), P = {bounds[block]['params_in_matmuls'] / 1e6:.1f} M: "
              f"full {bound_tokens_per_s(bounds[block], 'full'):.1f} tokens/s, "
              f"adapters {bound_tokens_per_s(bounds[block], 'lora'):.1f} tokens/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_data(a.corpus, Path(tmp) / "data")
        for block in a.blocks:
            for method in a.methods:
                runs = {"ours": [], "baseline": []}
                for i in range(a.repeats):  # who starts alternates
                    for impl, result in run_pair(method, block, data_dir, a.threads,
                                                 "ours" if i % 2 == 0 else "baseline", a.ours_set).items():
                        runs[impl].append(result)
                res = {impl: summarize(r, block) for impl, r in runs.items()}
                ratio = res["ours"]["tokens_per_s"] / res["baseline"]["tokens_per_s"]
                # adjacent steps of the same run: robust to the machine's drift between runs
                paired = statistics.median(b / o for o, b in zip(res["ours"]["timed_step_s"],
                                                                 res["baseline"]["timed_step_s"]))
                bound = bound_tokens_per_s(bounds[block], method)
                target = min(1.5 * res["baseline"]["tokens_per_s"], 0.75 * bound)
                row = {"method": method, "block_size": block, "batch": BATCH, "ours_set": overrides,
                       "bound_tokens_per_s": bound, "gemm_gflops": bounds[block]["gflops"],
                       "share_of_bound": res["ours"]["tokens_per_s"] / bound, "target_tokens_per_s": target,
                       "target_reached": res["ours"]["tokens_per_s"] >= target,
                       "ours_tokens_per_s": res["ours"]["tokens_per_s"],
                       "baseline_tokens_per_s": res["baseline"]["tokens_per_s"],
                       "ratio": ratio, "paired_step_ratio_median": paired,
                       "ours_per_run_tokens_per_s": res["ours"]["per_run_tokens_per_s"],
                       "baseline_per_run_tokens_per_s": res["baseline"]["per_run_tokens_per_s"],
                       "ours_timed_step_s": res["ours"]["timed_step_s"],
                       "baseline_timed_step_s": res["baseline"]["timed_step_s"],
                       "ours_peak_rss_mib": res["ours"]["peak_rss_mib"],
                       "baseline_peak_rss_mib": res["baseline"]["peak_rss_mib"]}
                rows.append(row)
                spread = {k: "/".join(f"{v:.1f}" for v in res[k]["per_run_tokens_per_s"]) for k in res}
                print(f"{method:6s} block {block:4d}: ours {row['ours_tokens_per_s']:8.1f} tok/s "
                      f"(runs {spread['ours']}; peak RSS {row['ours_peak_rss_mib']:5.0f} MiB) | "
                      f"baseline {row['baseline_tokens_per_s']:8.1f} tok/s (runs {spread['baseline']}; "
                      f"peak RSS {row['baseline_peak_rss_mib']:5.0f} MiB) | ratio {ratio:.3f} "
                      f"(paired per step: {paired:.3f}) | bound {bound:.1f} tok/s, share {row['share_of_bound']:.2f} "
                      f"| target {target:.1f} tok/s: {'reached' if row['target_reached'] else 'not reached'}",
                      flush=True)
                if a.profile:
                    row["profile"] = run_profile(method, block, data_dir, a.threads, a.ours_set)
                    print_profile(row["profile"], method, block, bounds[block], target)
    for block in a.blocks:  # the bound again: one probe of a VM scatters; shares against the higher of the two
        again = gemm_bound(block, a.threads)["gflops"]
        strict = dict(bounds[block], gflops=max(bounds[block]["gflops"], again))
        print(f"bound, block {block}, after the pairs: fp32 GEMM {again:.1f} GFLOP/s (before them "
              f"{bounds[block]['gflops']:.1f}); against the higher, {strict['gflops']:.1f}:", flush=True)
        for row in (r for r in rows if r["block_size"] == block):
            bound = bound_tokens_per_s(strict, row["method"])
            target = min(1.5 * row["baseline_tokens_per_s"], 0.75 * bound)
            row.update(gemm_gflops_after=again, strict_bound_tokens_per_s=bound,
                       strict_share_of_bound=row["ours_tokens_per_s"] / bound,
                       strict_target_reached=row["ours_tokens_per_s"] >= target)
            alone = ""
            if "profile" in row:
                row["alone_tokens_per_s"] = BATCH * block / statistics.median(row["profile"]["alone_step_s"])
                alone = f"; ours alone {row['alone_tokens_per_s']:.1f} tok/s, share {row['alone_tokens_per_s'] / bound:.2f}"
            print(f"    {row['method']:6s} ours {row['ours_tokens_per_s']:.1f} tok/s, share {row['strict_share_of_bound']:.2f} "
                  f"| target {target:.1f} tok/s: {'reached' if row['strict_target_reached'] else 'not reached'}{alone}")
    worst = min(r["ratio"] for r in rows)
    print(f"worst ratio ours/baseline: {worst:.3f} (target >= 0.95)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0 if worst >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
