"""Eval wall time, mmbench's engine vs lmms-eval 0.7.3, on the same world POPE records.

    python bench/eval_vs_lmms.py [--repeat 3] [--threads 1] [--limit N] [--model DIR] [--work DIR]
                                 [--baseline-src DIR]

One run, side by side, same records (the built world's POPE, all three splits), same checkpoint
(the shipped base by default), CPU, float32, each engine from its own command line:

- mmbench: `python -m mmbench eval MODEL --benchmarks pope --strict --data WORLD --dtype float32
  --device cpu --out <fresh folder>` in this venv (its default batch size);
- lmms-eval: `python -m lmms_eval --model llava_hf ... --batch_size 1 --log_samples` in lmms-eval's
  venv (.venv-lmms, or $MMBENCH_LMMS_PYTHON), exactly the command `mmbench eval --engine lmms-eval`
  runs, on the overlay tasks that engine writes: lmms-eval's own POPE task YAMLs (prompt,
  generation settings, scoring) with only the dataset swapped for a local JSONL of the same rows.
  They are written once, before any timing (they are the input data, like the built world);
  mmbench's wrapper around lmms-eval (preflight, conversion) is not timed.

Reported per engine (median over --repeat runs, engines alternating, every run in a fresh output
folder): wall time of the whole command (process start to exit), its CPU time (user + system of
the process and its children: steadier than wall on a shared machine), and generation alone: mmbench's
`HFVisionLanguageModel.generate` calls (timed inside the same process), lmms-eval's "Model
Responding" loop (the elapsed time its finished progress bar prints) and its own `model.generate`
sum.  mmbench generates each distinct input once: the "generated" column counts what it ran.

Checked on every run: the POPE metrics are identical — mmbench's results.json (strict parse, what
lmms-eval uses) against lmms-eval's own accuracy/precision/recall/F1 per split, and against
lmms-eval's answers scored by mmbench's scorer (all metrics, yes-ratio included); answers are
compared record by record.  Exit code 1 when a metric differs.

`--threads N` sets OMP_NUM_THREADS/MKL_NUM_THREADS for both engines (default: the environment's).
On a machine shared with other jobs one thread per engine is far steadier: torch's OpenMP threads
spin-wait for a descheduled sibling.  Each timed run follows an untimed run of the same command
on one record per split (`--cold`: none), so that every engine starts with its files (torch,
transformers, its venv, the data) in the page cache: on a shared machine whose cache is reclaimed
quickly, whichever engine ran last otherwise starts warm and the other cold (5 s vs 14 s measured
for mmbench's start alone).  `--baseline-src DIR` also times mmbench imported from DIR (a
folder holding another version's `mmbench/` package, e.g. an export of the previous commit), in
the same alternation, so that before/after ratios share one run's conditions.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


# ------------------------------------------------------------------ the mmbench child process
def child(stats_file: str, src: str, argv: list[str]) -> None:
    """`python -m mmbench <argv>` (mmbench imported from `src` unless empty) with its generate calls
    timed, written to `stats_file` at exit."""
    import runpy

    if src:
        sys.path.insert(0, src)
    from mmbench.harness import model as model_module

    stats = {"generate_s": 0.0, "calls": 0, "requests": 0, "first": None, "last": None}
    original = model_module.HFVisionLanguageModel.generate

    def timed(self, requests, *args, **kwargs):
        start = time.time()
        try:
            return original(self, requests, *args, **kwargs)
        finally:
            end = time.time()
            stats["generate_s"] += end - start
            stats["calls"] += 1
            stats["requests"] += len(requests)
            stats["first"] = stats["first"] or start
            stats["last"] = end

    model_module.HFVisionLanguageModel.generate = timed
    atexit.register(lambda: Path(stats_file).write_text(json.dumps(stats)))
    sys.argv = ["mmbench", *argv]
    runpy.run_module("mmbench", run_name="__main__", alter_sys=True)


# ------------------------------------------------------------------ one timed run per engine
def run_mmbench(args, world: Path, out: Path, env: dict, src: str = "") -> dict:
    def command(folder: Path, limit: int | None) -> list[str]:
        argv = ["eval", str(args.model), "--benchmarks", "pope", "--strict", "--data", str(world), "--dtype",
                "float32", "--device", "cpu", "--out", str(folder), "--name", "run"]
        argv += ["--limit", str(limit)] if limit else []
        argv += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        stats_file = str(folder.with_suffix(".stats.json"))
        return [sys.executable, str(Path(__file__).resolve()), "--child", stats_file, src, "--", *argv]

    if not args.cold:  # the same command on one record per split, untimed: warm file cache
        subprocess.run(command(out.with_name(out.name + "-warm"), 1), env=env, capture_output=True, cwd=ROOT,
                       check=False)
    stats = out.with_suffix(".stats.json")
    start, cpu = time.time(), _children_cpu()
    done = subprocess.run(command(out, args.limit), env=env, capture_output=True, text=True, cwd=ROOT,
                          check=False)
    wall, cpu = time.time() - start, _children_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"mmbench eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    timing = json.loads(stats.read_text())
    folder = out / "run" / "pope"
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return {"wall": wall, "cpu": cpu, "generation": timing["generate_s"], "startup": timing["first"] - start, "folder": folder,
            "after": start + wall - timing["last"], "generated": timing["requests"],
            "metrics": json.loads((folder / "results.json").read_text())["metrics"],
            "answers": {s["id"]: s["response"] for s in samples}}


def run_lmms(args, python: str, plans, tasks_dir: Path, out: Path, env: dict) -> dict:
    from mmbench.benchmarks.pope import BENCHMARK
    from mmbench.harness.lmms import convert_rows, lmms_command, own_metrics, read_log, read_output
    from mmbench.harness.scoring import score_samples

    command = lmms_command(python, str(args.model), [p.task for p in plans], tasks_dir, out, "cpu", "float32")
    log = out.with_suffix(".log")
    if not args.cold:  # the same command on one record per task, untimed: warm file cache
        warm = out.with_name(out.name + "-warm")
        subprocess.run([*command[:command.index("--output_path") + 1], str(warm), "--log_samples", "--limit", "1"],
                       env={**env, "TOKENIZERS_PARALLELISM": "false"}, capture_output=True, cwd=ROOT, check=False)
    start, cpu = time.time(), _children_cpu()
    with log.open("w") as handle:  # what `mmbench eval --engine lmms-eval` passes besides OFFLINE
        code = subprocess.call(command, env={**env, "TOKENIZERS_PARALLELISM": "false"}, stdout=handle,
                               stderr=subprocess.STDOUT, cwd=ROOT)
    wall, cpu = time.time() - start, _children_cpu() - cpu
    text = log.read_text(errors="replace")
    results, logs = read_output(out)
    if code != 0 or any(p.task not in results["results"] or p.task not in logs for p in plans):
        sys.exit(f"lmms-eval failed ({code}); see {log}:\n{text[-3000:]}")
    # Its generation loop: the elapsed time of the finished "Model Responding" bar (whole seconds;
    # the rate tqdm prints is a moving average, not records / time).  A bar may print its final
    # state twice (last update, then close): one bar per total.
    finished: dict[str, float] = {}
    for n, total, elapsed in re.findall(r"Model Responding: 100%\|[^|]*\| (\d+)/(\d+) \[([\d:]+)<", text):
        if n == total:
            finished[total] = max(finished.get(total, 0.0), _seconds(elapsed))
    loop = sum(finished.values())
    model_generate = sum(float(x) for x in re.findall(r"Total elapsed time: ([\d.]+)s", text))
    samples = [s for p in plans for s in convert_rows(BENCHMARK, p.split, read_log(logs[p.task]), p.records,
                                                        str(logs[p.task]))]
    _, rescored = score_samples(BENCHMARK, samples, parse="strict")
    own = {}
    for plan in plans:  # lmms-eval's fractions -> mmbench's percentages, per split
        for key, value in own_metrics(results, plan.task).items():
            metric = {"pope_accuracy": "accuracy", "pope_precision": "precision", "pope_recall": "recall",
                      "pope_f1_score": "f1"}.get(key)
            if metric:
                own[f"{plan.split}/{metric}"] = 100 * value
    return {"wall": wall, "cpu": cpu, "generation": loop, "model_generate": model_generate, "metrics": rescored,
            "own": own, "answers": {s["id"]: s["response"] for s in samples}, "generated": len(samples)}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _seconds(clock: str) -> float:
    """tqdm's [h:]mm:ss -> seconds."""
    value = 0.0
    for part in clock.split(":"):
        value = value * 60 + int(part)
    return value


# ------------------------------------------------------------------ checks and the table
def compare(mm: dict, lm: dict) -> list[str]:
    """Differences between the two engines' POPE numbers (empty: identical)."""
    problems = []
    if mm["metrics"] != lm["metrics"]:
        keys = sorted(set(mm["metrics"]) | set(lm["metrics"]))
        problems += [f"{k}: mmbench {mm['metrics'].get(k)} vs lmms-eval (mmbench scorer) {lm['metrics'].get(k)}"
                     for k in keys if mm["metrics"].get(k) != lm["metrics"].get(k)]
    for key, value in lm["own"].items():  # lmms-eval's own aggregation: float noise from *100 only
        if abs(mm["metrics"][key] - value) > 1e-9:
            problems.append(f"{key}: mmbench {mm['metrics'][key]} vs lmms-eval's own {value}")
    if set(mm["answers"]) != set(lm["answers"]):
        problems.append(f"record sets differ ({len(mm['answers'])} vs {len(lm['answers'])} records)")
    return problems


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3], sys.argv[5:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the table shows medians")
    parser.add_argument("--threads", type=int, default=0, help="OMP/MKL threads for both engines (0: as set)")
    parser.add_argument("--limit", type=int, default=None, help="records per POPE split (default: all)")
    parser.add_argument("--batch-size", type=int, default=None, help="mmbench's --batch-size (default: its own)")
    parser.add_argument("--model", type=Path, default=ROOT / "mmbench" / "world" / "base_model")
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a new temp folder)")
    parser.add_argument("--cold", action="store_true", help="no untimed 1-record warm-up run before each timed run")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="also time mmbench imported from this folder (holding a `mmbench/` package)")
    args = parser.parse_args()
    args.model = args.model.resolve()

    from mmbench.benchmarks.pope import BENCHMARK
    from mmbench.harness.lmms import find_python, preflight, write_overlays
    from mmbench.world.build import ensure_world

    world = ensure_world()
    work = Path(tempfile.mkdtemp(prefix="eval-vs-lmms-", dir=args.work))
    python = find_python()
    info = preflight(python)
    plans = write_overlays([BENCHMARK], str(world), args.limit, work / "overlay", info["tasks"])
    env = {**os.environ, **OFFLINE}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    n = sum(len(p.records) for p in plans)
    print(f"world POPE {n} records ({world}), model {args.model.name}, lmms-eval {info['version']} ({python}), "
          f"threads {args.threads or os.environ.get('OMP_NUM_THREADS', 'default')}, runs in {work}", flush=True)

    engines = ["mmbench", *(["mmbench@baseline"] if args.baseline_src else []), "lmms-eval"]
    runs: dict[str, list[dict]] = {engine: [] for engine in engines}
    failures = []
    for i in range(args.repeat):
        for engine in engines:
            if engine == "lmms-eval":
                result = run_lmms(args, python, plans, work / "overlay" / "tasks", work / f"lmms-{i}", env)
            else:
                src = str(args.baseline_src.resolve()) if engine == "mmbench@baseline" else ""
                result = run_mmbench(args, world, work / f"{engine}-{i}", env, src)
            runs[engine].append(result)
        lm = runs["lmms-eval"][-1]
        if args.baseline_src:  # the two mmbench versions must write the same bytes
            failures += [f"{name} differs between mmbench and mmbench@baseline" for name in ("samples.jsonl", "results.json")
                         if (runs["mmbench"][-1]["folder"] / name).read_bytes()
                         != (runs["mmbench@baseline"][-1]["folder"] / name).read_bytes()]
        line = []
        for engine in engines[:-1]:
            mm = runs[engine][-1]
            same = sum(mm["answers"][k] == v for k, v in lm["answers"].items() if k in mm["answers"])
            problems = compare(mm, lm)
            failures += [f"{engine}: {p}" for p in problems]
            line.append(f"{engine} {mm['wall']:.1f} s (generation {mm['generation']:.1f} s; answers identical "
                        f"{same}/{len(lm['answers'])}; metrics {'identical' if not problems else 'DIFFER'})")
        print(f"run {i + 1}/{args.repeat}: " + ", ".join(line) +
              f", lmms-eval {lm['wall']:.1f} s (generation {lm['generation']:.1f} s)", flush=True)

    def med(engine, key):
        return statistics.median(r[key] for r in runs[engine])

    lm_wall, lm_gen = med("lmms-eval", "wall"), med("lmms-eval", "generation")
    rows = [["engine", "wall s", "CPU s", "generation s", "startup s", "after s", "generated", "all walls s"]]
    for engine in engines[:-1]:
        rows.append([engine, f"{med(engine, 'wall'):.1f}", f"{med(engine, 'cpu'):.1f}", f"{med(engine, 'generation'):.1f}",
                     f"{med(engine, 'startup'):.1f}", f"{med(engine, 'after'):.1f}",
                     str(runs[engine][0]["generated"]), " ".join(f"{r['wall']:.1f}" for r in runs[engine])])
    in_model = f"{lm_gen:.1f} ({med('lmms-eval', 'model_generate'):.1f} in model.generate)"
    rows.append(["lmms-eval", f"{lm_wall:.1f}", f"{med('lmms-eval', 'cpu'):.1f}", in_model, "", "",
                 str(runs["lmms-eval"][0]["generated"]), " ".join(f"{r['wall']:.1f}" for r in runs["lmms-eval"])])
    for engine in engines[:-1]:
        rows.append([f"lmms-eval / {engine}", f"{lm_wall / med(engine, 'wall'):.2f}x",
                     f"{med('lmms-eval', 'cpu') / med(engine, 'cpu'):.2f}x",
                     f"{lm_gen / med(engine, 'generation'):.2f}x" if lm_gen else "-", "", "", "", ""])
    print()
    print(table(rows))
    metrics = runs["mmbench"][-1]["metrics"]
    own = runs["lmms-eval"][-1]["own"]
    print()
    print(table([["POPE (strict)", "mmbench", "lmms-eval (mmbench scorer)", "lmms-eval's own"],
                 *[[k, f"{metrics[k]:.2f}", f"{runs['lmms-eval'][-1]['metrics'].get(k, float('nan')):.2f}",
                    f"{own[k]:.2f}" if k in own else "-"]
                   for k in ("f1", "accuracy", "precision", "recall", "yes_ratio",
                             *(f"{s}/{m}" for s in ("random", "popular", "adversarial")
                               for m in ("accuracy", "f1")))]]))
    if failures:
        print("\nDIFFERENCES:\n  " + "\n  ".join(failures[:20]), file=sys.stderr)
        sys.exit(1)
    print("\nPOPE metrics identical on every run" + (" (and mmbench's files byte-identical to the baseline's)"
                                                         if args.baseline_src else ""))


if __name__ == "__main__":
    main()
