"""lmms-eval as a second engine: `mmbench eval --engine lmms-eval` and `mmbench import-lmms`.

The engine maps benchmark ids to lmms-eval's own tasks and runs them on the checkpoint with
lmms-eval's HF LLaVA model class (`--model llava_hf`), as a subprocess of the interpreter that has
lmms-eval (`$MMBENCH_LMMS_PYTHON`, else `.venv-lmms/bin/python` in the repo, else this one).
mmbench loads the records itself (world, a folder or the hub) and hands them to lmms-eval through
"overlay" tasks: each includes lmms-eval's task YAML unchanged (prompt, generation settings,
scoring) and only swaps the dataset for a local JSONL of the same rows, so both engines see the
same records, offline.  lmms-eval's scoring is kept where it needs no hub file or GPT key (POPE,
TextVQA, GQA); for MM-Vet, LLaVA-W and COCO CHAIR the overlay only generates, and mmbench's judge
and scorer do the rest.  lmms-eval's per-sample logs become mmbench run files (samples.jsonl,
results.json scored by mmbench, lmms-eval's own numbers kept under config.lmms_eval).

lmms-eval exits 0 when a task failed, so success is read from its files: every task must appear in
its results JSON and log one sample per record.  MMHal and MMHal-V (lmms-eval lacks them) run on
mmbench's engine.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mmbench.benchmarks import Benchmark, Record
from mmbench.errors import MmbenchError
from mmbench.harness.runfiles import atomic_write_json, atomic_write_text, read_samples, write_samples

OVERLAY_PREFIX = "mmbench_data_"
INSTALL_HINT = ('install it in a separate venv: python -m venv .venv-lmms && . .venv-lmms/bin/activate && '
                'pip install torch==2.13.0 && pip install -e ".[lmms]" && pip uninstall -y torchvision '
                '(CPU only; see docs/lmms_eval.md), or set MMBENCH_LMMS_PYTHON')


def task_benchmark(task: str) -> tuple[str, str | None] | None:
    """(benchmark id, split) behind an lmms-eval task name: built-in (a benchmark's `lmms.tasks`),
    overlay or exported."""
    from mmbench.benchmarks import benchmark_names, get_benchmark
    from mmbench.harness.lmms_export import benchmark_of_task

    name = task.removeprefix(OVERLAY_PREFIX)
    for benchmark in benchmark_names():
        for builtin, _, split in get_benchmark(benchmark).lmms.tasks:
            if name == builtin:
                return benchmark, split
    exported = benchmark_of_task(task)
    return (exported, None) if exported else None


# ------------------------------------------------------------------------- the lmms-eval process
def find_python() -> str:
    """The interpreter that runs lmms-eval."""
    import importlib.util

    env = os.environ.get("MMBENCH_LMMS_PYTHON")
    if env:
        return env
    repo_venv = Path(__file__).resolve().parents[2] / ".venv-lmms" / "bin" / "python"
    if repo_venv.exists():
        return str(repo_venv)
    if importlib.util.find_spec("lmms_eval") is not None:
        return sys.executable
    raise MmbenchError(f"lmms-eval is not installed; {INSTALL_HINT}")


_PREFLIGHT = ("import json, importlib.metadata as m, pathlib, lmms_eval.tasks as t, decord\n"
              "from transformers import LlavaForConditionalGeneration\nimport mmbench\n"
              "print(json.dumps({'version': m.version('lmms-eval'), 'tasks': str(pathlib.Path(t.__file__).parent)}))")


def preflight(python: str) -> dict:
    """lmms-eval's version and task folder, or a one-line error naming the broken import."""
    try:
        done = subprocess.run([python, "-c", _PREFLIGHT], capture_output=True, text=True, timeout=600)
    except OSError as exc:
        raise MmbenchError(f"cannot run {python}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        hint = " (a CUDA torchvision next to CPU torch: pip uninstall -y torchvision)" \
            if "torchvision" in done.stderr or "LlavaForConditionalGeneration" in last else ""
        raise MmbenchError(f"lmms-eval does not import in {python}: {last}{hint}; {INSTALL_HINT}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class TaskPlan:
    task: str  # the name lmms-eval runs
    benchmark: Benchmark
    split: str | None
    records: list[Record]


def _doc(row: dict, record: Record, images: Path) -> dict:
    """A data row in lmms-eval's field names, JSON-safe, with the image as an absolute path."""
    doc = {k: v for k, v in row.items() if not k.startswith("_") and k != "image"}
    doc = json.loads(json.dumps(doc, default=str))
    image = record.image
    if image is not None and hasattr(image, "save"):
        target = images / (hashlib.sha1(record.id.encode()).hexdigest()[:16] + ".png")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(target, format="PNG")
        image = target
    doc["image"] = str(Path(image).resolve()) if image is not None else None
    doc.setdefault("question_id", record.id.split("/")[-1])
    return doc


def write_overlays(benchmarks: list[Benchmark], sources: str | dict | None, limit: int | None, work: Path,
                   tasks_dir: str) -> list[TaskPlan]:
    """Overlay task YAMLs + local JSONL docs under `work/tasks`, one per lmms-eval task
    (`sources`: one data source, or one per benchmark name)."""
    from mmbench.benchmarks.loading import join_images, load_rows
    from mmbench.harness.lmms_export import Function, dump_yaml

    folder = work / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    plans = []
    for bench in benchmarks:
        data = sources.get(bench.name) if isinstance(sources, dict) else sources
        rows, root = load_rows(data, name=bench.name, hub_id=bench.hub_id, config=bench.hub_config,
                               splits=bench.hub_splits, read_official=bench.read_official)
        if bench.image_join and rows and "image" not in rows[0]:
            rows = join_images(rows, data, bench)
        pairs = [(row, bench.record_from_row(row, root)) for row in rows]
        for task, yaml_path, split in bench.lmms.tasks:
            chosen = [(r, rec) for r, rec in pairs if split is None or rec.reference.get("split") == split]
            chosen = chosen[:limit] if limit is not None else chosen
            docs = folder / f"{task}.jsonl"
            atomic_write_text(docs, "".join(json.dumps(_doc(r, rec, work / "images"), ensure_ascii=False) + "\n"
                                            for r, rec in chosen))
            config = {"include": str(Path(tasks_dir) / yaml_path), "task": OVERLAY_PREFIX + task,
                      "dataset_path": "json", "dataset_name": None,
                      "dataset_kwargs": {"data_files": {"test": str(docs.resolve())}}, "test_split": "test",
                      "process_docs": Function("mmbench.harness.lmms_export.image_docs")}
            if not bench.lmms.scores_offline:
                config["process_results"] = Function("mmbench.harness.lmms_export.generated_only")
                config["metric_list"] = [{"metric": "mmbench_generated", "aggregation": "mean",
                                          "higher_is_better": True}]
            atomic_write_text(folder / f"{OVERLAY_PREFIX}{task}.yaml", dump_yaml(config))
            plans.append(TaskPlan(OVERLAY_PREFIX + task, bench, split, [rec for _, rec in chosen]))
    return plans


def lmms_command(python: str, model: str, tasks: list[str], include: Path, output: Path, device: str,
                 dtype: str, max_new_tokens: int | None = None) -> list[str]:
    model_args = f"pretrained={model},device_map={device}" + (f",dtype={dtype}" if dtype != "auto" else "")
    command = [python, "-m", "lmms_eval", "--model", "llava_hf", "--model_args", model_args,
               "--tasks", ",".join(tasks), "--include_path", str(include), "--batch_size", "1",
               "--device", device, "--output_path", str(output), "--log_samples"]
    if max_new_tokens:
        command += ["--gen_kwargs", f"max_new_tokens={max_new_tokens}"]
    return command


def run_process(command: list[str], log: Path, env: dict | None = None) -> int:
    """Run lmms-eval, its output going to `log` (and stderr unless MMBENCH_LMMS_QUIET=1); its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **(env or {})})
        for line in proc.stdout:
            handle.write(line)
            if os.environ.get("MMBENCH_LMMS_QUIET") != "1":
                sys.stderr.write(line)
        return proc.wait()


# ------------------------------------------------------------------------- reading its output
def read_output(folder: Path) -> tuple[dict, dict[str, Path]]:
    """The newest results JSON (merged over all results files, newest last) and per task the newest
    samples log under an lmms-eval output folder."""
    folder = Path(folder)
    results: dict = {"results": {}, "n-samples": {}, "configs": {}, "config": {}}
    version = None
    from mmbench.errors import read_json_object

    for path in sorted(folder.rglob("*_results.json"), key=lambda p: p.name):
        data = read_json_object(path, " (lmms-eval's results)")
        for key in results:
            part = data.get(key) or {}
            if not isinstance(part, dict):
                raise MmbenchError(f"{path}: {key!r} must be an object, got {type(part).__name__}")
            results[key].update(part)
        version = data.get("lmms_eval_version", version)
    results["lmms_eval_version"] = version
    samples: dict[str, Path] = {}
    for path in sorted(folder.rglob("*_samples_*.jsonl"), key=lambda p: p.name):
        samples[path.stem.split("_samples_", 1)[1]] = path
    return results, samples


def own_metrics(results: dict, task: str) -> dict:
    """lmms-eval's aggregate numbers for a task, as it reports them ('metric,filter' -> metric)."""
    out = {}
    for key, value in (results.get("results", {}).get(task) or {}).items():
        if "," in key and "stderr" not in key and isinstance(value, (int, float)):
            out[key.split(",")[0]] = value
    return out


def _response(row: dict) -> str:
    value = row.get("filtered_resps", row.get("resps", ""))
    while isinstance(value, list):
        value = value[0] if value else ""
    return (value if isinstance(value, str) else str(value)).strip()


def _metric_entry(row: dict) -> dict | None:
    for key, value in row.items():
        if key in ("doc", "doc_id", "target", "filtered_resps", "resps", "input", "token_counts", "doc_hash"):
            continue
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, dict):
            return value
    return None


def convert_rows(bench: Benchmark, split: str | None, rows: list[dict], records: list[Record] | None,
                 where: str) -> list[dict]:
    """lmms-eval per-sample log rows -> mmbench samples.  References come from the records the
    engine wrote (by doc_id), an exported task's own entry, a logged `doc`, or the metric entry
    (`Benchmark.lmms.record_from_entry`: POPE's ground_truth)."""
    samples = []
    for row in sorted(rows, key=lambda r: r.get("doc_id", 0)):
        entry = _metric_entry(row) or {}
        if isinstance(entry.get("sample"), dict):  # an exported mmbench task: the whole sample
            samples.append(entry["sample"])
            continue
        response = _response(row)
        if records is not None:
            record = records[row["doc_id"]]
        elif isinstance(row.get("doc"), dict):
            record = bench.record_from_row({k: v for k, v in row["doc"].items() if k != "image"}, None)
        else:
            from_entry = bench.lmms.record_from_entry
            record = from_entry(entry, split, row["doc_id"]) if from_entry is not None else None
        if record is None:
            raise MmbenchError(f"{where}: the log has no document for doc_id {row.get('doc_id')} and {bench.name}'s "
                               "metric entries carry no reference; rerun lmms-eval with an exported mmbench task")
        sample = {"benchmark": bench.name, "id": record.id, "prompt": row.get("input") or record.prompt,
                  "response": response, "reference": record.reference}
        if bench.judge is not None and bench.judge.vision and isinstance(record.image, (str, Path)):
            sample["image"] = str(record.image)
        samples.append(sample)
    return samples


def finish_benchmark(bench: Benchmark, samples: list[dict], folder: Path, config: dict, strict: bool,
                     judge_step=None) -> dict | None:
    """Write samples.jsonl, judge what needs judging, score with mmbench, write results.json."""
    from mmbench.harness.scoring import build_results, requested_parse, score_samples

    samples_path = folder / "samples.jsonl"
    write_samples(samples_path, samples)
    if bench.judged and any("judge" not in s for s in samples):
        if judge_step is None:
            return None
        samples, config["judge"] = judge_step(bench, samples, samples_path)
    per_sample, metrics = score_samples(bench, samples, parse=requested_parse(strict))
    results = build_results(bench, per_sample, metrics, config)
    atomic_write_json(folder / "results.json", results)
    return results


# ------------------------------------------------------------------------- the two entry points
def run_lmms_eval(request) -> dict[str, dict]:
    """`mmbench eval --engine lmms-eval`: lmms-eval for what it has, mmbench's engine for the rest."""
    from mmbench.harness.eval_api import make_judge_step, resolve_data, resolve_suite, run_eval
    from mmbench.harness.scoring import requested_parse
    from mmbench.harness.checkpoint import resolve_device, resolve_source

    benchmarks = list(request.benchmarks)
    if not benchmarks:
        raise MmbenchError("no benchmark selected")
    if request.model is None:
        model_path, model_spec, base_name = Path(resolve_suite(request, None).base_model()), None, "base"
    else:
        model_path, model_spec = Path(request.model).expanduser(), request.model
        base_name = resolve_source(request.model, request.trust_remote_code)[1]
    model_spec = str(model_path.resolve()) if model_path.exists() else model_spec
    name = request.name or f"{base_name}-lmms-eval"
    # This engine never reuses answers (it reruns lmms-eval), but it must not write into a run
    # folder that holds another checkpoint's answers (harness/provenance.py).
    from mmbench.harness.eval_api import check_model_json, check_run_name
    from mmbench.harness.provenance import Conflict, checkpoint_fingerprint

    fingerprint = checkpoint_fingerprint(str(model_path) if model_path.exists() else model_spec)
    try:
        check_model_json(Path(request.out) / check_run_name(name), fingerprint)
    except Conflict:
        if not request.overwrite:
            raise
        shutil.rmtree(Path(request.out) / name)
    lmms = [b for b in benchmarks if b.lmms.tasks]
    fallback = [b for b in benchmarks if not b.lmms.tasks]
    out = Path(request.out)
    all_results: dict[str, dict] = {}
    if fallback:
        print(f"lmms-eval has no task for {', '.join(b.name for b in fallback)}: running "
              f"{'it' if len(fallback) == 1 else 'them'} on mmbench's engine", file=sys.stderr, flush=True)
        all_results.update(run_eval(replace(request, benchmarks=fallback, engine="mmbench", name=name)))
    suite = resolve_suite(request, None if request.model is None else model_path)
    data = resolve_data(request, suite)
    judge_step, judges = make_judge_step(request, suite)
    judges.check(lmms)
    failed: list[str] = []
    info: dict = {}
    if lmms:
        python = find_python()
        info = preflight(python)
        device = resolve_device(request.device)
        dtype = "float32" if request.dtype == "auto" and device == "cpu" else request.dtype
        work = out / name / "lmms-eval"
        shutil.rmtree(work, ignore_errors=True)
        plans = write_overlays(lmms, data, request.limit, work, info["tasks"])
        command = lmms_command(python, model_spec, [p.task for p in plans], work / "tasks", work / "output",
                               device, dtype, request.max_new_tokens)
        offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} if model_path.exists() else {}
        print(f"lmms-eval {info['version']}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        code = run_process(command, work / "lmms-eval.log", {**offline, "TOKENIZERS_PARALLELISM": "false"})
        results, logs = read_output(work / "output")
        fingerprint = {"data": data, "limit": request.limit, "max_new_tokens": request.max_new_tokens,
                       "engine": "lmms-eval"}
        for bench in lmms:
            mine = [p for p in plans if p.benchmark is bench]
            bad = [p.task for p in mine if p.task not in results["results"] or p.task not in logs
                   or sum(1 for _ in logs[p.task].open()) != len(p.records)]
            if bad:
                failed += bad
                continue
            samples = [s for p in mine
                       for s in convert_rows(bench, p.split, read_log(logs[p.task]), p.records, str(logs[p.task]))]
            parse = bench.parse_for(requested_parse(request.strict))
            config = {"fingerprint": {**fingerprint, "version": bench.version, "parse": parse},
                      "model": name, "engine": "lmms-eval",
                      "lmms_eval": {"version": info["version"], "tasks": [p.task for p in mine],
                                    "metrics": {p.task: own_metrics(results, p.task) for p in mine}}}
            done = finish_benchmark(bench, samples, out / name / bench.name, config, request.strict, judge_step)
            if done is not None:
                all_results[bench.name] = done
        if code != 0 and not failed and len(all_results) < len(benchmarks):
            failed.append(f"(exit code {code})")
    engine = "lmms-eval" if not fallback else ("lmms-eval+mmbench" if lmms else "mmbench")
    atomic_write_json(out / name / "model.json",
                      {"model": name, "checkpoint": model_spec or "base", "checkpoint_fingerprint": fingerprint,
                       "engine": engine, "knob": "",
                       "lmms_eval_version": info.get("version"), **request.meta,
                       "engines": {b.name: ("lmms-eval" if b in lmms else "mmbench") for b in benchmarks}})
    if failed:
        raise MmbenchError(f"lmms-eval failed on {', '.join(failed)} (it exits 0 anyway); see "
                           f"{out / name / 'lmms-eval' / 'lmms-eval.log'}")
    return all_results


def read_log(path: Path) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "_line"} for s in read_samples(path)]
