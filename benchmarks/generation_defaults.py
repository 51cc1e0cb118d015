"""Decoding defaults, old and new, on the same trained runs: language rates side by side.

Two steps. ``generate`` regenerates every run of a finished grid folder (trained runs and
the zero-shot ``base`` cells) into ``OUT/<run_id>/`` with the given parameters; run it once
with the package as it was before issue 13 (penalty 1.2 on prompt and text, 48 new tokens)
and once with the new defaults (no penalty, 30 words). ``measure`` re-measures both sets
with the current language identifier (so only the decoding differs) and prints, per method,
the Bashkir, Russian, English and other rates with 95 % intervals over prompts and seeds
(and those of the test documents' own next words after the same prompts, from the last folder)
(:func:`bashkir_peft.report.bootstrap.pooled_rate_interval`), the code-switch rate, the mean
words per continuation, and the agreement with fastText lid.176 on long sentences.

    cp -r <grid runs>/cpu-demo RUNS   # never write into a shared grid folder
    git archive 2c79259 src | tar -x -C /tmp/old      # the package before issue 13
    PYTHONPATH=/tmp/old/src python benchmarks/generation_defaults.py generate RUNS OLD \
        --n-prompts 60 --set repetition_penalty=1.2 --set max_new_tokens=48
    python benchmarks/generation_defaults.py generate RUNS NEW --n-prompts 60
    python benchmarks/generation_defaults.py measure OLD NEW --names old new
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def generate(runs: Path, out: Path, n_prompts: int, settings: dict, num_threads: int | None,
             match: str = "*") -> None:
    from bashkir_peft.config.generate import GenerateParams
    from bashkir_peft.generate.run import run_generation

    for run in sorted(p for p in runs.glob(match) if (p / "grid_cell.json").is_file()):
        try:  # several processes may share the work: the first to claim a run does it
            (out / run.name).mkdir(parents=True)
        except FileExistsError:
            continue
        cell = json.loads((run / "grid_cell.json").read_text(encoding="utf-8"))["params"]
        common = dict(output_dir=str(out / run.name), n_prompts=n_prompts, num_threads=num_threads, **settings)
        if (run / "train.json").is_file():
            params = GenerateParams(run_dir=str(run), **common)
        else:  # a zero-shot cell: the base model, the grid's data, the cell's seed as decoding seed
            params = GenerateParams(model=cell["model"], data_dir=str(runs / "data"), seed=cell["seed"], **common)
        rec = run_generation(params)
        print(f"{rec.label}: {rec.cost.generate_time_s:.0f} s, {rec.cost.new_tokens} tokens", flush=True)


def measure(folders: list[Path], names: list[str]) -> None:
    """Rates per decoding x method on the prompts every folder has (the first n of one prompt
    ranking: a run with fewer prompts compares on its prompts)."""
    import pandas as pd

    from bashkir_peft.records import GenerateRecord, RunFiles, read_record
    from bashkir_peft.report.bootstrap import pooled_rate_interval
    from bashkir_peft.text.codeswitch import LANGUAGES, analyze_many
    from bashkir_peft.text.crosscheck import crosscheck

    sets = []
    for folder in folders:
        runs = {}
        for run in sorted(p for p in folder.iterdir() if (p / RunFiles.GENERATE).is_file()):
            rec = read_record(run / RunFiles.GENERATE, GenerateRecord)
            runs[run.name] = (rec, pd.read_parquet(run / RunFiles.GENERATIONS))
        sets.append(runs)
    common = {run: set.intersection(*(set(s[run][1]["prompt_id"]) for s in sets)) for run in sets[0]
              if all(run in s for s in sets)}
    rows = []
    for name, runs in [*zip(names, sets), ("reference", {})]:
        by_method: dict[str, list] = {}
        for run, (rec, df) in runs.items():
            if run not in common:
                continue
            texts = df[df["prompt_id"].isin(common[run])]["continuation"].fillna("").tolist()
            by_method.setdefault(rec.run.method, []).append((texts, pd.DataFrame(analyze_many(texts))))
        if name == "reference":  # the test documents' own next words after the same prompts
            run, (_, df) = next((r, v) for r, v in sets[-1].items() if r in common)
            texts = df[df["prompt_id"].isin(common[run])]["reference"].fillna("").tolist()
            by_method["reference text"] = [(texts, pd.DataFrame(analyze_many(texts)))]
        for method, pairs in by_method.items():
            tables = [t[t["n_letters"] > 0] for _, t in pairs]
            letters = [t[[f"letters_{x}" for x in LANGUAGES]].sum(axis=1).to_numpy() for t in tables]
            row = {"decoding": name, "method": method, "runs": len(pairs),
                   "continuations": sum(len(texts) for texts, _ in pairs),
                   "empty": sum(len(texts) for texts, _ in pairs) - sum(len(t) for t in tables)}
            for lang in LANGUAGES:
                ci = pooled_rate_interval([t[f"letters_{lang}"].to_numpy() for t in tables], letters)
                row[lang] = f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]"
            ci = pooled_rate_interval([t["code_switch"].to_numpy(float) for t in tables])
            row["code-switch (rus/eng)"] = f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]"
            ci = pooled_rate_interval([t["latin_share"].fillna(0).to_numpy() * t["n_letters"].to_numpy()
                                       for t in tables], [t["n_letters"].to_numpy() for t in tables])
            row["Latin letters"] = f"{ci.estimate:.2f}"
            row["words"] = round(sum(t["n_words"].sum() for t in tables) / max(1, sum(len(t) for t in tables)), 1)
            check = crosscheck([x for texts, _ in pairs for x in texts], 20)
            row["fastText agreement"] = ("–" if check["agreement"] is None
                                         else f"{check['agreement']:.2f} (n={check['n_sentences']})")
            rows.append(row)
    table = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(("reference text", "base", "full", "lora", "qlora"))}
    table = table.sort_values(["method", "decoding"], key=lambda c: c.map(order) if c.name == "method" else c)
    print(table.to_markdown(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    g = sub.add_parser("generate", help="regenerate every run of a grid folder")
    g.add_argument("runs", type=Path)
    g.add_argument("out", type=Path)
    g.add_argument("--n-prompts", type=int, default=60)
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a GenerateParams value")
    g.add_argument("--num-threads", type=int, default=None)
    g.add_argument("--match", default="*", help="only run folders matching this glob (to split the work)")
    m = sub.add_parser("measure", help="rates with intervals, per method, for each folder of generations")
    m.add_argument("folders", type=Path, nargs="+")
    m.add_argument("--names", nargs="+")
    a = ap.parse_args(argv)
    if a.step == "generate":
        settings = dict(kv.split("=", 1) for kv in a.set)
        generate(a.runs, a.out, a.n_prompts, {k: _value(v) for k, v in settings.items()}, a.num_threads, a.match)
    else:
        names = a.names or [f.name for f in a.folders]
        if len(names) != len(a.folders):
            print("give one name per folder", file=sys.stderr)
            return 2
        measure(a.folders, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
